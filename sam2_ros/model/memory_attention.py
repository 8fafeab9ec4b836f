"""Memory attention: conditions the current frame's features on the memory bank.

A stack of pre-norm transformer layers (self-attention over the current frame, cross-attention
to the memories, MLP), parameter-for-parameter identical to
``sam2.modeling.memory_attention`` so Meta's ``memory_attention.*`` weights load strictly.

Beyond the official module, ``memory_mask`` lets an exported graph keep a fixed-capacity memory
bank: unused slots are padded and masked out instead of changing the input shapes.

Memory-bank layout (per batch row, M tokens in all)::

    [ frame 0 (HW tokens) | frame 1 (HW) | ... | frame n-1 (HW) | P object-pointer tokens ]
      \\___________ RoPE, same angles for every frame ___________/ \\____ no RoPE _____/

with ``P = num_obj_ptr_tokens`` and HW the current frame's token count. Spatial token ``j``
is rotated as grid position ``j mod HW``, so a padded bank reproduces the unpadded result iff
every valid spatial token keeps its offset within its frame, i.e. padding is done in whole
frames (any frame slots may be invalid, in any order), and pointer padding stays inside the
trailing ``P`` slots (any of them may be invalid). Attention over keys is order-independent,
so which slots are padding does not matter beyond that.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from sam2_ros.model.common import Attention, activation_fn
from sam2_ros.model.rope import RoPEAttention


class MemoryAttentionLayer(nn.Module):
    """One pre-norm layer: self-attention, cross-attention to memory, then an MLP.

    Dropout modules are kept (they act only in training) so the module mirrors the official
    one; ``pos_enc_at_*`` select where the sine position encodings are added, as in the
    config (SAM 2.1: only at the cross-attention keys).
    """

    def __init__(
        self,
        activation: str,
        cross_attention: Attention,
        d_model: int,
        dim_feedforward: int,
        dropout: float,
        pos_enc_at_attn: bool,
        pos_enc_at_cross_attn_keys: bool,
        pos_enc_at_cross_attn_queries: bool,
        self_attention: Attention,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.dim_feedforward = dim_feedforward
        self.self_attn = self_attention
        self.cross_attn_image = cross_attention

        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)

        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

        self.activation = activation_fn(activation)
        self.pos_enc_at_attn = pos_enc_at_attn
        self.pos_enc_at_cross_attn_queries = pos_enc_at_cross_attn_queries
        self.pos_enc_at_cross_attn_keys = pos_enc_at_cross_attn_keys

    @staticmethod
    def _with_pos(x: Tensor, pos: Tensor | None, enabled: bool) -> Tensor:
        return x + pos if enabled and pos is not None else x

    def _self_attention(self, tgt: Tensor, query_pos: Tensor | None) -> Tensor:
        tgt2 = self.norm1(tgt)
        q = k = self._with_pos(tgt2, query_pos, self.pos_enc_at_attn)
        return tgt + self.dropout1(self.self_attn(q, k, tgt2))

    def _cross_attention(
        self,
        tgt: Tensor,
        memory: Tensor,
        query_pos: Tensor | None,
        pos: Tensor | None,
        num_k_exclude_rope: int,
        attn_mask: Tensor | None,
    ) -> Tensor:
        tgt2 = self.norm2(tgt)
        q = self._with_pos(tgt2, query_pos, self.pos_enc_at_cross_attn_queries)
        k = self._with_pos(memory, pos, self.pos_enc_at_cross_attn_keys)
        if isinstance(self.cross_attn_image, RoPEAttention):
            out = self.cross_attn_image(q, k, memory, num_k_exclude_rope, attn_mask)
        else:  # plain attention rotates nothing, so there is nothing to exclude
            out = self.cross_attn_image.attend(*self.cross_attn_image.project(q, k, memory), attn_mask)
        return tgt + self.dropout2(out)

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        pos: Tensor | None = None,
        query_pos: Tensor | None = None,
        num_k_exclude_rope: int = 0,
        attn_mask: Tensor | None = None,
    ) -> Tensor:
        """``tgt``: B x HW x d_model; ``memory``/``pos``: B x M x kv_dim; ``attn_mask``: see
        :class:`RoPEAttention` (True = attend)."""
        tgt = self._self_attention(tgt, query_pos)
        tgt = self._cross_attention(tgt, memory, query_pos, pos, num_k_exclude_rope, attn_mask)
        tgt2 = self.linear2(self.dropout(self.activation(self.linear1(self.norm3(tgt)))))
        return tgt + self.dropout3(tgt2)


class MemoryAttention(nn.Module):
    """``num_layers`` copies of ``layer`` and a final LayerNorm.

    Inputs are sequence-first (tokens x batch x channels, SAM 2's convention); with
    ``batch_first`` they are transposed for the layers and the output is transposed back.
    """

    def __init__(
        self,
        d_model: int,
        pos_enc_at_input: bool,
        layer: nn.Module,
        num_layers: int,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        # Independent deep copies, as the official get_clones: same init, separate weights.
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = nn.LayerNorm(d_model)
        self.pos_enc_at_input = pos_enc_at_input
        self.batch_first = batch_first

    def forward(
        self,
        curr: Tensor | list[Tensor],
        memory: Tensor,
        curr_pos: Tensor | list[Tensor] | None = None,
        memory_pos: Tensor | None = None,
        num_obj_ptr_tokens: int = 0,
        memory_mask: Tensor | None = None,
    ) -> Tensor:
        """Condition ``curr`` (HW x B x d_model) on ``memory`` (M x B x kv_dim).

        ``curr``/``curr_pos`` may be one-element lists, as ``SAM2Base`` passes them.
        ``num_obj_ptr_tokens``: trailing memory tokens that are object pointers (no RoPE).
        ``memory_mask``: optional boolean B x M, True for valid memory tokens, in the
        layout described in the module docstring; every row needs at least one valid token.
        Returns HW x B x d_model.
        """
        if isinstance(curr, list):
            if not isinstance(curr_pos, list) or len(curr) != 1 or len(curr_pos) != 1:
                raise ValueError("list inputs must be one-element lists for curr and curr_pos")
            curr, curr_pos = curr[0], curr_pos[0]
        if curr.shape[1] != memory.shape[1]:
            raise ValueError(f"batch size differs: curr {curr.shape[1]} vs memory {memory.shape[1]}")

        output = curr
        if self.pos_enc_at_input and curr_pos is not None:
            output = output + 0.1 * curr_pos

        if self.batch_first:
            output = output.transpose(0, 1)
            memory = memory.transpose(0, 1)
            curr_pos = curr_pos.transpose(0, 1) if curr_pos is not None else None
            memory_pos = memory_pos.transpose(0, 1) if memory_pos is not None else None

        attn_mask = None
        if memory_mask is not None:
            if memory_mask.dtype != torch.bool:
                raise ValueError(f"memory_mask must be boolean, got {memory_mask.dtype}")
            attn_mask = memory_mask[:, None, None, :]  # B x 1(heads) x 1(queries) x M

        for layer in self.layers:
            output = layer(output, memory, memory_pos, curr_pos, num_obj_ptr_tokens, attn_mask)
        output = self.norm(output)
        return output.transpose(0, 1) if self.batch_first else output
