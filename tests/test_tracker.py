"""Tracker behaviour that parity cannot show: bounded memory, bad input, post-processing."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from sam2_ros.model import build_sam2
from sam2_ros.tracking import (
    CapacityError,
    FrameError,
    PromptError,
    Sam2Tracker,
    TorchBackend,
    TrackerError,
    UnknownObjectError,
)
from sam2_ros.tracking.bank import EMPTY, MemoryBank
from sam2_ros.tracking.imageops import IMG_MEAN, IMG_STD, boxes_from_masks, fill_holes, preprocess


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return build_sam2("sam2.1_hiera_t", image_size=64)


def make_tracker(model, **kw) -> Sam2Tracker:
    return Sam2Tracker(TorchBackend(model), max_objects=3, **kw)


def frames(n: int, hw=(48, 64), seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (*hw, 3), dtype=np.uint8)
    for i in range(n):
        yield np.roll(base, i % 7, axis=1)


def live_tensor_count() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def test_memory_is_bounded_over_a_long_stream(small_model):
    """Bank bytes, bank storage and the number of live tensors: same after 100 and 2 000 frames."""
    tracker = make_tracker(small_model, max_cond_frames=2)
    snapshots = {}
    for i, frame in enumerate(frames(2000)):
        tracker.track(frame)
        if i == 0:
            tracker.add_points(1, [[10, 10]])
            tracker.add_box(2, [5, 5, 40, 40])
        if i % 300 == 150:  # corrections keep adding conditioning frames (capacity 2)
            tracker.add_points(1, [[20, 20]], [0])
        if i + 1 in (100, 2000):
            snapshots[i + 1] = (
                tracker.bank.nbytes(),
                [t.data_ptr() for t in tracker.bank.tensors()],
                len(tracker.bank.tensors()),
                live_tensor_count(),
            )
    assert snapshots[100] == snapshots[2000]
    assert (tracker.bank.cond_frame[0] != EMPTY).sum() == 2  # capacity respected, oldest evicted


def test_bad_input_is_refused_and_tracking_continues(small_model):
    """Each bad request raises a specific error and leaves results bit-identical."""
    good, probed = make_tracker(small_model), make_tracker(small_model)
    stream = list(frames(4))
    with pytest.raises(TrackerError, match="call track"):
        probed.add_points(1, [[1, 1]])
    for t in (good, probed):
        t.track(stream[0])
        t.add_points(1, [[10, 10]])
    bad_calls = [
        (PromptError, "outside", lambda t: t.add_points(1, [[65, 10]])),
        (PromptError, "outside", lambda t: t.add_points(2, [[-1, 10]])),
        (PromptError, "finite", lambda t: t.add_points(1, [[float("nan"), 3]])),
        (PromptError, "N x 2", lambda t: t.add_points(1, [["a", 3]])),
        (PromptError, "labels must be", lambda t: t.add_points(1, [[3, 3]], [2])),
        (PromptError, "1 points but 2 labels", lambda t: t.add_points(1, [[3, 3]], [1, 0])),
        (PromptError, "no points", lambda t: t.add_points(1, [])),
        (PromptError, "empty or outside", lambda t: t.add_box(2, [40, 5, 5, 40])),
        (PromptError, "empty or outside", lambda t: t.add_box(2, [0, 0, 100, 10])),
        (PromptError, "4 finite numbers", lambda t: t.add_box(2, [0, 0, 10])),
        (PromptError, "does not match the frame size", lambda t: t.add_mask(2, np.ones((10, 10), bool))),
        (PromptError, "non-negative integers", lambda t: t.add_points("x", [[3, 3]])),
        (UnknownObjectError, "unknown object id 7", lambda t: t.remove_object(7)),
        (FrameError, "H x W x 3", lambda t: t.track(np.zeros((48, 64), np.uint8))),
        (FrameError, "empty frame", lambda t: t.track(np.zeros((0, 64, 3), np.uint8))),
        (FrameError, "uint8", lambda t: t.track(np.zeros((48, 64, 3), np.float32))),
    ]
    for error, message, call in bad_calls:
        with pytest.raises(error, match=message):
            call(probed)
    assert probed.object_ids == good.object_ids == [1]
    for frame in stream[1:]:
        a, b = good.track(frame), probed.track(frame)
        assert a.object_ids == b.object_ids
        assert torch.equal(a.logits, b.logits)
        assert torch.equal(a.scores, b.scores)


def test_capacity_error_names_the_limit(small_model):
    tracker = make_tracker(small_model)
    tracker.track(next(frames(1)))
    for oid in (1, 2, 3):
        tracker.add_points(oid, [[10, 10]])
    with pytest.raises(CapacityError, match="max_objects"):
        tracker.add_points(4, [[10, 10]])
    tracker.remove_object(2)
    assert tracker.add_points(4, [[10, 10]]).object_ids == [1, 3, 4]


def test_objects_can_be_added_removed_and_reset_mid_stream(small_model):
    tracker = make_tracker(small_model)
    stream = frames(6)
    tracker.track(next(stream))
    tracker.add_points(5, [[10, 10]])
    assert tracker.track(next(stream)).object_ids == [5]
    assert tracker.add_box(9, [1, 1, 30, 30]).object_ids == [5, 9]
    assert tracker.track(next(stream)).object_ids == [5, 9]
    tracker.remove_object(5)
    result = tracker.track(next(stream))
    assert result.object_ids == [9] and result.logits.shape == (1, 48, 64)
    tracker.reset()
    result = tracker.track(next(stream))
    assert result.object_ids == [] and result.frame_index == 0
    assert result.label_image().shape == (48, 64) and not result.label_image().any()


def test_bank_keeps_the_most_recent_conditioning_frames_and_reuses_evicted_ones():
    bank = MemoryBank(max_objects=1, feat_size=2, device="cpu", max_cond_frames=2)
    for f in range(10):
        feats = torch.full((1, 64, 2, 2), float(f))
        bank.write([0], f, feats, torch.full((1, 256), float(f)), is_cond=[f in (0, 3, 8)])
    assert sorted(bank.cond_frame[0].tolist()) == [3, 8]
    batch = bank.gather([0], frame_idx=10)
    valid = batch.valid[:, 0]
    frames_used = batch.feats[valid, 0, 0, 0, 0].tolist()
    t_pos = batch.t_pos[valid, 0].tolist()
    # conditioning 3 and 8 (t_pos 0); recent 4..9 except 8, which is a conditioning frame.
    assert sorted(zip(frames_used, t_pos)) == [(3.0, 0), (4.0, 1), (5.0, 2), (6.0, 3), (7.0, 4), (8.0, 0), (9.0, 6)]
    ptr_frames = batch.ptrs[batch.ptr_valid[:, 0], 0, 0].tolist()
    diffs = batch.ptr_t_diff[batch.ptr_valid[:, 0], 0].tolist()
    # pointers: conditioning 3, 8 and every other frame of the last 15 (frame 0 was evicted
    # from the conditioning slots, so it comes back as an ordinary recent pointer).
    assert sorted(zip(ptr_frames, diffs)) == [(float(f), float(10 - f)) for f in range(10)]


def test_fill_holes_fills_small_background_components_only():
    logits = torch.full((2, 1, 32, 32), -5.0)
    logits[0, 0, 4:20, 4:20] = 5.0
    logits[0, 0, 8:10, 8:11] = -5.0  # 6-pixel hole: filled
    logits[0, 0, 14:18, 14:18] = -5.0  # 16-pixel hole: kept
    logits[1, 0, 0:3, 0:3] = 5.0  # no holes in object 2
    out = fill_holes(logits, max_area=8)
    assert torch.all(out[0, 0, 8:10, 8:11] == 0.1)
    assert torch.all(out[0, 0, 14:18, 14:18] == -5.0)
    assert torch.equal(out[1], logits[1])
    assert fill_holes(logits, 0) is logits


def test_device_preprocessing_matches_meta_pillow_loader_within_one_level(data_dir):
    Image = pytest.importorskip("PIL.Image")  # the test extra's; tests/ must collect without it
    img = Image.open(data_dir / "videos" / "bedroom" / "00000.jpg").convert("RGB")
    size = 256
    ref = np.asarray(img.resize((size, size)), dtype=np.float32) / 255.0  # Meta's load_img_as_tensor
    ref = (ref - np.array(IMG_MEAN)) / np.array(IMG_STD)
    ours = preprocess(np.asarray(img), size, torch.device("cpu"))[0].permute(1, 2, 0).numpy()
    one_level = 1.0 / 255.0 / min(IMG_STD)
    assert np.abs(ours - ref).max() <= one_level + 1e-5


def test_boxes_from_masks():
    masks = torch.zeros(2, 10, 12, dtype=torch.bool)
    masks[0, 2:5, 3:9] = True
    boxes, nonempty = boxes_from_masks(masks)
    assert boxes[0].tolist() == [3.0, 2.0, 8.0, 4.0] and nonempty.tolist() == [True, False]


def box_session(backend: TorchBackend, n: int) -> torch.Tensor:
    """Logits of n frames: object 1 from a box on frame 0, then tracked."""
    tracker = Sam2Tracker(backend, max_objects=2, fill_hole_area=0)
    out = []
    for i, frame in enumerate(frames(n)):
        r = tracker.track(frame)
        if i == 0:
            r = tracker.add_box(1, [5, 5, 40, 40])
        out.append(r.logits)
    return torch.stack(out)


def test_bfloat16_autocast_on_cpu_stays_close_to_float32(small_model):
    """Mixed precision changes rounding, not behaviour: masks agree with fp32 (random weights)."""
    results = {
        dtype: box_session(TorchBackend(small_model, dtype=dtype), 6) for dtype in (torch.float32, torch.bfloat16)
    }
    a, b = results[torch.float32] > 0, results[torch.bfloat16] > 0
    assert results[torch.bfloat16].dtype == torch.float32  # outputs are float32 either way
    assert (a & b).sum() / (a | b).sum() >= 0.9
    with pytest.raises(ValueError, match="float16 is not supported on CPU"):
        TorchBackend(small_model, dtype=torch.float16)


@pytest.mark.slow
def test_torch_compile_matches_eager(small_model):
    """``compile=`` (torch.compile of the image encoder) changes speed, not results."""
    results = [box_session(TorchBackend(small_model, compile=mode), 4) for mode in (None, "default")]
    assert torch.allclose(results[0], results[1], atol=1e-3, rtol=1e-3)


def test_cpu_attention_chunks_follow_the_working_set():
    """On a CPU, memory attention takes as many objects per call as fit the working-set budget: more
    for small banks, one where a single object's keys, values and MLP activations already fill it."""
    tiny256, tiny512 = (build_sam2("sam2.1_hiera_t", image_size=s) for s in (256, 512))
    edgetam256 = build_sam2("edgetam", image_size=256)
    assert TorchBackend.cpu_attention_chunk(tiny256) == 4  # 1856 memory tokens, 256 queries: 5.6 MiB per object
    assert TorchBackend.cpu_attention_chunk(tiny512) == 1  # 7232 tokens, 1024 queries: 22 MiB
    assert TorchBackend.cpu_attention_chunk(edgetam256) == 2  # 7 x 512 latents + pointers: 9.1 MiB
    backend = TorchBackend(tiny512)
    assert (backend.attention_chunk, backend.object_chunk) == (1, TorchBackend.CPU_OBJECT_CHUNK)
    assert TorchBackend(tiny256, object_chunk=3).attention_chunk == 3  # a given chunk is used for both


@pytest.mark.parametrize("chunk", [1, 2])
def test_objects_attend_memory_in_chunks_like_all_at_once(small_model, chunk):
    """The CPU's object chunks (``object_chunk``, memory attention and encoder) give the results of one batch
    of all objects."""

    def run(object_chunk: int) -> list[torch.Tensor]:
        tracker = Sam2Tracker(TorchBackend(small_model, object_chunk=object_chunk), max_objects=5)
        out = []
        for f, frame in enumerate(frames(6)):
            result = tracker.track(frame)
            if f == 0:
                for i in range(5):
                    result = tracker.add_points(i + 1, [[8 + 10 * i, 10 + 5 * i]])
            if f == 3:
                result = tracker.add_points(2, [[30, 30]], labels=[0])  # a correction: objects differ in memory
            out.append(result.logits.clone())
        return out

    chunked, whole = run(chunk), run(1000)
    worst = max(float((a - b).abs().max()) for a, b in zip(chunked, whole))
    assert worst <= 1e-5, worst
    assert float(whole[-1].abs().max()) > 0.05  # real (random-weight) logits, not an empty comparison
