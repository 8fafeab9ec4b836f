"""TrackResult's lazy full-resolution outputs and the fast paths behind them change cost, not results."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sam2_ros.model.rope as rope
from sam2_ros.tracking.imageops import boxes_from_logits, boxes_from_masks
from sam2_ros.tracking.results import TrackResult


def low_res_batch(seed: int = 0) -> torch.Tensor:
    """4 objects' 32 x 32 logits: blobs, one object empty (all negative)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(4, 1, 32, 32, generator=g) - 1.5
    low[1] = -5.0
    return low


def test_boxes_from_logits_equal_boxes_from_thresholded_masks():
    logits = F.interpolate(low_res_batch(), size=(45, 70), mode="bilinear", align_corners=False)[:, 0]
    boxes, nonempty = boxes_from_logits(logits)
    ref_boxes, ref_nonempty = boxes_from_masks(logits > 0)
    assert torch.equal(boxes, ref_boxes) and torch.equal(nonempty, ref_nonempty)
    assert nonempty.tolist() == [True, False, True, True]


def test_lazy_result_equals_eager_computation_and_computes_once():
    low, scores = low_res_batch(1), torch.tensor([1.0, 2.0, -1.0, 0.5])
    result = TrackResult.from_low_res(7, (45, 70), [3, 5, 8, 9], low, scores, {})
    assert result.__dict__["_logits"] is None  # nothing full-resolution yet
    boxes = result.boxes
    logits = result.logits
    assert result.logits is logits  # computed once, kept
    expected = F.interpolate(low, size=(45, 70), mode="bilinear", align_corners=False)[:, 0]
    assert torch.equal(logits, expected)
    ref_boxes, nonempty = boxes_from_masks(expected > 0)
    assert torch.equal(boxes, ref_boxes)
    assert result.visible.tolist() == ((scores > 0) & nonempty).tolist() == [True, False, False, True]
    assert torch.equal(result.masks, expected > 0)


def test_label_image_is_the_winning_object_where_any_mask_covers():
    low = low_res_batch(2)
    ids = [3, 5, 8, 9]
    result = TrackResult.from_low_res(0, (45, 70), ids, low, torch.ones(4), {})
    logits = result.logits.numpy()
    # Independent reference: per pixel, highest logit wins if positive, else background.
    expected = np.where(logits.max(axis=0) > 0, np.asarray(ids, np.uint8)[logits.argmax(axis=0)], 0)
    labels = result.label_image()
    assert labels.dtype == np.uint8 and np.array_equal(labels, expected)
    assert set(np.unique(labels)) - {0} <= {3, 8, 9} and (labels > 0).any()


def test_result_built_from_full_resolution_tensors_is_unchanged():
    logits = torch.full((1, 2, 3), -1.0)
    logits[0, 1, 2] = 4.0
    r = TrackResult(
        0, (2, 3), [4], logits, torch.ones(1), torch.tensor([[2.0, 1.0, 2.0, 1.0]]), torch.ones(1, dtype=torch.bool)
    )
    assert r.logits is logits and r.boxes.tolist() == [[2.0, 1.0, 2.0, 1.0]]
    assert r.objects[0].box == (2.0, 1.0, 2.0, 1.0)
    with pytest.raises(ValueError, match="neither given"):
        _ = TrackResult(0, (2, 3), [4], None, torch.ones(1), None, None).logits


def test_eager_rope_equals_the_exported_formulation(monkeypatch):
    """The complex-multiply fast path (eager) and the real formulation (exports) agree."""
    att = rope.RoPEAttention(64, 1, kv_in_dim=32, rope_k_repeat=True, feat_sizes=(8, 8))
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 64, 64, generator=g), torch.randn(2, 1, 3 * 64 + 8, 64, generator=g)
    fast = att.apply_rope(q, k, num_k_exclude_rope=8)
    monkeypatch.setattr(rope, "_eager", lambda: False)
    slow = att.apply_rope(q, k, num_k_exclude_rope=8)
    torch.testing.assert_close(fast[0], slow[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(fast[1], slow[1], atol=1e-6, rtol=0)
    assert torch.equal(fast[1][:, :, -8:], k[:, :, -8:])  # object pointers are not rotated
    assert not torch.allclose(fast[1][:, :, :-8], k[:, :, :-8], atol=1e-3)  # the frames are rotated
