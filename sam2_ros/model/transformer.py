"""SAM's two-way transformer: prompt tokens and image tokens attend to each other.

The mask decoder runs this on ``[output tokens; prompt tokens]`` (queries) against the
flattened image embedding (keys). Submodule names match Meta's ``sam2.modeling.sam.transformer``
so ``sam_mask_decoder.transformer.*`` checkpoint keys load unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn

from sam2_ros.model.common import MLP, Attention


class TwoWayAttentionBlock(nn.Module):
    """One round of token <-> image exchange, four sub-layers each followed by LayerNorm.

    1. self-attention among tokens,
    2. tokens attend to the image,
    3. MLP on tokens,
    4. the image attends to the tokens.

    Positional encodings are re-added to the attention *inputs* (never to the values or
    the residual stream) at every sub-layer, so position information cannot wash out.
    The first block skips the PE in self-attention and replaces the queries outright
    (no residual): at that point the queries *are* the raw prompt embeddings, whose PE is
    already baked in.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        # Cross-attention to the 4096 image tokens is the costly part, hence the narrower
        # internal width (embedding_dim / attention_downsample_rate).
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, num_layers=2, activation=activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor) -> tuple[Tensor, Tensor]:
        """Update (queries: B x N x C, keys: B x HW x C); returns both, same shapes."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q = queries + query_pe
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))

        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        k = keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks, then a final token -> image attention and LayerNorm.

    The final attention lets the tokens read the image *after* the image tokens have been
    updated by the last block, so the output tokens (IoU, masks, object score) see the
    fully prompt-conditioned image.
    """

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim=embedding_dim,
                num_heads=num_heads,
                mlp_dim=mlp_dim,
                activation=activation,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image_embedding: Tensor, image_pe: Tensor, point_embedding: Tensor) -> tuple[Tensor, Tensor]:
        """Run the transformer.

        Args:
            image_embedding: B x C x H x W image features (already summed with dense prompts).
            image_pe: B x C x H x W positional encoding of the image grid.
            point_embedding: B x N x C tokens; also used as their own PE at every layer.

        Returns:
            (tokens B x N x C, image tokens B x HW x C).
        """
        keys = image_embedding.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, query_pe=point_embedding, key_pe=key_pe)

        q = queries + point_embedding
        k = keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
