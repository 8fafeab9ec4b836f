"""SAM 2 on single images: Meta's ``SAM2ImagePredictor`` semantics on our ``Sam2Model``.

The image is encoded once (``set_image``); any number of ``predict`` calls then run only
the prompt encoder and mask decoder, for one object or a batch of objects at once. The
numbers match Meta's predictor on identical weights (see ``tests/test_image_predictor.py``):

* preprocessing is ``ToTensor`` + ``Resize`` (bilinear, antialiased, on floats) +
  ``Normalize``, as Meta's ``SAM2Transforms`` (not the video loader's bicubic resize);
* the stride-16 features get ``no_mem_embed`` added (a frame without memory);
* a box travels as two corner points (labels 2, 3) in front of the clicks, and a prompt
  without clicks sends no point token at all;
* the decoder's own selection (multimask: tokens 1..3; single: token 0 with the stability
  fallback) without the video heads' no-object fill;
* full-resolution masks are the low-res logits upsampled bilinearly to the image size;
  the returned low-res logits are clamped to +-32, ready to feed back as ``mask_input``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sam2_ros.model.sam2 import Sam2Model
from sam2_ros.tracking.errors import PromptError, TrackerError
from sam2_ros.tracking.imageops import IMG_MEAN, IMG_STD, check_frame

if TYPE_CHECKING:
    from PIL.Image import Image

#: Meta clamps the low-res logits it returns, so they can be fed back as a mask prompt.
LOW_RES_CLAMP = 32.0
#: Logit shift Meta's ``SAM2Transforms`` writes into filled holes (+) and removed sprinkles (-).
FILL_LOGIT = 10.0


def preprocess_image(image: np.ndarray, image_size: int, device: torch.device) -> Tensor:
    """H x W x 3 uint8 RGB -> 1 x 3 x S x S, as Meta's ``SAM2Transforms`` (ToTensor, Resize, Normalize)."""
    t = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).float().div(255.0)
    t = F.interpolate(t[None], size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMG_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMG_STD, device=device).view(1, 3, 1, 1)
    return (t - mean) / std


def small_components(binary: np.ndarray, max_area: float) -> np.ndarray:
    """N x H x W bool -> N x H x W bool: pixels of 8-connected True regions of area <= ``max_area``.

    Meta computes these components with a CUDA extension (and silently skips the step
    without it); OpenCV gives the same components on every device.
    """
    out = np.zeros_like(binary, dtype=bool)
    for i, plane in enumerate(binary):
        _, labels, stats, _ = cv2.connectedComponentsWithStats(plane.astype(np.uint8), connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] <= max_area)
        small = small[small > 0]  # label 0 is the False background
        if len(small):
            out[i] = np.isin(labels, small)
    return out


class SamImagePredictor:
    """Encode an image once, then predict masks for point/box/mask prompts (Meta's API).

    ``mask_threshold``: logit cut for binary masks. ``max_hole_area`` / ``max_sprinkle_area``:
    fill background holes / drop foreground specks of at most that many low-res pixels
    before upsampling (Meta's ``SAM2Transforms.postprocess_masks``; 0 disables).
    """

    def __init__(
        self, model: Sam2Model, mask_threshold: float = 0.0, max_hole_area: float = 0.0, max_sprinkle_area: float = 0.0
    ) -> None:
        self.model = model.eval()
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area
        self.reset_predictor()

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def orig_hw(self) -> tuple[int, int]:
        """(H, W) of the image that was set."""
        self._require_image()
        return self._orig_hw

    def reset_predictor(self) -> None:
        """Forget the image and its features."""
        self._embed: Tensor | None = None
        self._high_res: list[Tensor] | None = None
        self._orig_hw: tuple[int, int] | None = None

    # ------------------------------------------------------------------ image
    @torch.inference_mode()
    def set_image(self, image: np.ndarray | Image) -> None:
        """Encode an RGB image (H x W x 3 uint8 array, or a PIL image) for later ``predict`` calls."""
        if not isinstance(image, np.ndarray):
            if not hasattr(image, "convert"):
                raise TypeError(f"set_image takes an H x W x 3 uint8 RGB array or a PIL image, got {type(image)}")
            image = np.asarray(image.convert("RGB"))
        self.reset_predictor()
        h, w = check_frame(image)
        feats = self.model.encode_image(preprocess_image(image, self.image_size, self.device))
        self._embed = self.model.no_memory_features(feats.vision_feats)
        self._high_res = feats.high_res
        self._orig_hw = (h, w)

    def get_image_embedding(self) -> Tensor:
        """1 x C x H x W stride-16 embedding of the current image (with ``no_mem_embed``)."""
        self._require_image()
        return self._embed

    # ---------------------------------------------------------------- prompts
    def transform_coords(self, coords: Tensor, normalize: bool = True) -> Tensor:
        """Image pixels (x, y) -> model input pixels; ``normalize=False`` takes 0..1 coordinates."""
        if normalize:
            h, w = self.orig_hw
            coords = coords.clone()
            coords[..., 0] = coords[..., 0] / w
            coords[..., 1] = coords[..., 1] / h
        return coords * self.image_size

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt, or for a batch of B prompts (one object each) on the current image.

        ``point_coords``: N x 2 or B x N x 2 pixels (x, y) with ``point_labels`` N or B x N
        (1 object, 0 background); ``box``: 4 or B x 4 (x1, y1, x2, y2); ``mask_input``:
        1 x h x w or B x 1 x h x w low-res logits from an earlier call. With
        ``normalize_coords=False`` coordinates are 0..1 fractions of the image.

        Returns (masks C x H x W as float32 0/1 like Meta's (logits with ``return_logits``),
        predicted IoUs C, low-res logits C x h x w), with a leading B for a batch; C is 3
        with ``multimask_output``, else 1.
        """
        coords, labels = self._prep_prompts(point_coords, point_labels, box, normalize_coords)
        masks_in = None
        if mask_input is not None:
            masks_in = torch.as_tensor(np.asarray(mask_input), dtype=torch.float32, device=self.device)
            if masks_in.ndim == 3:
                masks_in = masks_in[None]
            if masks_in.ndim != 4 or masks_in.shape[1] != 1:
                raise PromptError(f"mask_input must be 1 x h x w or B x 1 x h x w logits, got {tuple(masks_in.shape)}")
        masks, ious, low = self.predict_torch(coords, labels, masks_in, multimask_output, return_logits)
        return (
            masks.squeeze(0).float().cpu().numpy(),
            ious.squeeze(0).float().cpu().numpy(),
            low.squeeze(0).float().cpu().numpy(),
        )

    @torch.inference_mode()
    def predict_torch(
        self,
        point_coords: Tensor | None,
        point_labels: Tensor | None,
        mask_input: Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Batched prediction in model coordinates (Meta's ``_predict``), tensors on the device.

        ``point_coords`` B x N x 2 in model input pixels (0..S), box corners first with
        labels 2 and 3; ``mask_input`` B x 1 x h x w logits. Returns (masks B x C x H x W,
        IoUs B x C, low-res logits B x C x h x w clamped to +-32).
        """
        self._require_image()
        b = 1
        if point_coords is not None:
            b = point_coords.shape[0]
        elif mask_input is not None:
            b = mask_input.shape[0]
        embed = self._embed.expand(b, *self._embed.shape[1:])
        high_res = [f.expand(b, *f.shape[1:]) for f in self._high_res]
        raw = self.model.decode_all(embed, high_res, point_coords, point_labels, mask_input, pad_missing_points=False)
        low, ious, _ = self.model.sam_mask_decoder.select(raw.masks, raw.ious, raw.obj_ptrs, multimask_output)
        low = low.float()
        masks = F.interpolate(self._clean_small_regions(low), size=self._orig_hw, mode="bilinear", align_corners=False)
        if not return_logits:
            masks = masks > self.mask_threshold
        return masks, ious, low.clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)

    # -------------------------------------------------------------- internals
    def _clean_small_regions(self, low: Tensor) -> Tensor:
        """Meta's hole filling / sprinkle removal on low-res logits (before upsampling)."""
        if self.max_hole_area <= 0 and self.max_sprinkle_area <= 0:
            return low
        flat = low.flatten(0, 1)
        if self.max_hole_area > 0:
            holes = small_components((flat <= self.mask_threshold).cpu().numpy(), self.max_hole_area)
            holes_t = torch.from_numpy(holes).to(low.device).view_as(low)
            low = torch.where(holes_t, torch.full_like(low, self.mask_threshold + FILL_LOGIT), low)
            flat = low.flatten(0, 1)
        if self.max_sprinkle_area > 0:
            specks = small_components((flat > self.mask_threshold).cpu().numpy(), self.max_sprinkle_area)
            specks_t = torch.from_numpy(specks).to(low.device).view_as(low)
            low = torch.where(specks_t, torch.full_like(low, self.mask_threshold - FILL_LOGIT), low)
        return low

    def _prep_prompts(self, point_coords, point_labels, box, normalize: bool) -> tuple[Tensor | None, Tensor | None]:
        """Numpy prompts -> (B x N x 2 model-pixel coordinates, B x N labels), boxes as corner points."""
        self._require_image()
        coords = labels = None
        if point_coords is not None:
            if point_labels is None:
                raise PromptError("point_labels must be given with point_coords (1 object, 0 background)")
            coords = self._as_points(point_coords, "point_coords", normalize)
            labels = torch.as_tensor(np.asarray(point_labels), dtype=torch.int32)
            if labels.ndim == 1:
                labels = labels[None]
            if tuple(labels.shape) != tuple(coords.shape[:2]):
                raise PromptError(
                    f"{coords.shape[1]} points per prompt need as many labels, got point_labels of "
                    f"shape {tuple(labels.shape)} for point_coords of shape {tuple(coords.shape)}"
                )
            if not torch.isin(labels, torch.tensor([0, 1], dtype=torch.int32)).all():
                raise PromptError(f"point labels must be 1 (object) or 0 (background), got {labels.unique().tolist()}")
        if box is not None:
            corners = self._as_points(np.asarray(box, dtype=np.float64).reshape(-1, 2, 2), "box", normalize)
            if not ((corners[:, 0] <= corners[:, 1]).all()):
                raise PromptError("boxes must be x1, y1, x2, y2 with the top-left corner first")
            corner_labels = torch.tensor([[2, 3]], dtype=torch.int32).repeat(corners.shape[0], 1)
            if coords is not None:
                if coords.shape[0] != corners.shape[0]:
                    raise PromptError(
                        f"{corners.shape[0]} boxes but {coords.shape[0]} point prompts; give one "
                        f"set of points per box (B x N x 2)"
                    )
                coords, labels = torch.cat([corners, coords], dim=1), torch.cat([corner_labels, labels], dim=1)
            else:
                coords, labels = corners, corner_labels
        if coords is None:
            return None, None
        return self.transform_coords(coords, normalize).to(self.device), labels.to(self.device)

    def _as_points(self, values, what: str, normalize: bool) -> Tensor:
        """Array-like -> B x N x 2 float32, refusing non-finite values and points off the image."""
        try:
            pts = torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32)
        except (TypeError, ValueError) as exc:
            raise PromptError(f"{what} must be numbers, got {values!r}") from exc
        if pts.ndim == 2:
            pts = pts[None]
        if pts.ndim != 3 or pts.shape[-1] != 2 or pts.shape[1] == 0:
            raise PromptError(f"{what} has shape {tuple(pts.shape)}; expected N x 2 or B x N x 2 (x, y)")
        if not torch.isfinite(pts).all():
            raise PromptError(f"{what} must be finite, got {pts.tolist()}")
        # Meta's predictor would silently extrapolate from points off the image.
        h, w = self.orig_hw
        lim = torch.tensor([w, h], dtype=pts.dtype) if normalize else torch.ones(2, dtype=pts.dtype)
        outside = ((pts < 0) | (pts > lim)).any(dim=-1)
        if outside.any():
            unit = "" if normalize else " (normalised 0..1)"
            raise PromptError(f"{what} {pts[outside].tolist()}{unit} lie outside the {w}x{h} image")
        return pts

    def _require_image(self) -> None:
        if self._embed is None:
            raise TrackerError("no image set: call set_image(image) before predict")
