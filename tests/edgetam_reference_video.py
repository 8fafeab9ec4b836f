"""Reference side of the EdgeTAM streaming parity: Meta's video predictor played in streaming order.

Runs INSIDE the reference subprocess only: ``tests/edgetam_reference_worker.py`` executes this
file as an extra after its bootstrap (Meta's EdgeTAM first on ``sys.path``, torchvision stand-in,
no pretrained download), and it registers :func:`edgetam_video` there. The test process calls it
through ``tests.edgetam_reference`` with this file as the extra.

Meta's EdgeTAM cannot batch objects (its perceiver's ``.expand(B, ...).view(...)`` fails for
B > 1) and its July-2024 video predictor refuses a new object id once tracking has started, so
every object gets its own predictor state, started on the frame of its first prompt. With
non-overlapping masks off (the default), objects never interact, so this is exactly what one
batched tracker must produce.

Events, in streaming order (a prompt on frame f applies after the stream reached f: Meta
propagates to f, the prompt refines f's tracked output, propagation continues from f; with
``add_all_frames_to_correct_as_cond`` a correction becomes a conditioning frame, as in our
tracker's default)::

    {"frame": f, "obj": id, "points": [[x, y], ...], "labels": [1, 0, ...]}   # clicks
    {"frame": f, "obj": id, "box": [x1, y1, x2, y2]}                          # a box
"""

from __future__ import annotations

import torch

from tests.edgetam_reference_worker import build_reference_model, reference_function


def _play(predictor, video: str, num_frames: int, events: list[dict], last_frame: dict[int, int]):
    """{frame: {obj: video-resolution logits}} and the normalised frames Meta's loader made."""
    by_obj: dict[int, list[dict]] = {}
    for ev in events:
        by_obj.setdefault(int(ev["obj"]), []).append(ev)
    out: dict[int, dict[int, torch.Tensor]] = {}
    images = None
    for obj_id, evs in by_obj.items():
        state = predictor.init_state(video)
        images = state["images"]
        frames = sorted({int(ev["frame"]) for ev in evs})
        last = min(int(last_frame.get(obj_id, num_frames - 1)), num_frames - 1)
        for k, f in enumerate(frames):
            for ev in (e for e in evs if int(e["frame"]) == f):
                if "box" in ev:
                    predictor.add_new_points_or_box(state, f, obj_id, box=ev["box"])
                else:
                    predictor.add_new_points_or_box(state, f, obj_id, points=ev["points"], labels=ev["labels"])
            # Track up to (and including) the next prompt's frame: that prompt refines its output.
            end = frames[k + 1] if k + 1 < len(frames) else last
            for fi, ids, masks in predictor.propagate_in_video(
                state, start_frame_idx=f, max_frame_num_to_track=end - f
            ):
                out.setdefault(int(fi), {})[obj_id] = masks[ids.index(obj_id), 0].clone()
    return out, images


@reference_function
def edgetam_video(
    seed: int, image_size: int, video: str, num_frames: int, events: list, last_frame: dict, obj_score_bias: float
) -> dict:
    """The scenario on Meta's ``SAM2VideoPredictor`` for EdgeTAM (one state per object).

    Hole filling is off (Meta's needs its CUDA extension); ``obj_score_bias`` is added to the
    object-score head so objects are present under random weights. Returns the weights used,
    the normalised frames and per frame and object the logits.
    """
    predictor = build_reference_model(seed, image_size, video=True)
    predictor.fill_hole_area = 0
    predictor.add_all_frames_to_correct_as_cond = True
    with torch.no_grad():
        predictor.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += obj_score_bias
    try:
        with torch.inference_mode():
            logits, images = _play(predictor, video, num_frames, events, last_frame)
        sd = {k: v.detach().clone() for k, v in predictor.state_dict().items()}
    finally:
        with torch.no_grad():
            predictor.sam_mask_decoder.pred_obj_score_head.layers[-1].bias -= obj_score_bias
    return {"state_dict": sd, "images": images.clone(), "logits": logits}
