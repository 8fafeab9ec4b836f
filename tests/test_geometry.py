"""3-D positions from depth (sam2_ros.geometry) on synthetic scenes with known geometry.

The scene: a box whose front face (0.06 x 0.04 m, square to the camera at 0.6 m) stands in front
of a wall at 1.5 m. Depth is ray-cast analytically, then damaged the way real sensors damage it:
flying pixels (depths between face and wall) on the silhouette's outer ring, random holes, and
the mask given to ``locate_objects`` bleeds 2 px onto the wall like a real tracker's mask.
Expected numbers come from the geometry, not from the implementation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2_ros.geometry import (
    Intrinsics,
    IntrinsicsError,
    as_intrinsics,
    intrinsics_from_camera_info,
    locate_objects,
    masked_points,
    parse_intrinsics,
)

H, W = 180, 240
INTR = Intrinsics(1200.0, 1200.0, 119.5, 89.5)  # 0.5 mm per pixel on the face
FACE_Z, WALL_Z = 0.6, 1.5
# Face edges on pixel boundaries of the full-resolution grid: columns 60..179, rows 50..129.
X0, X1 = (59.5 - INTR.cx) * FACE_Z / INTR.fx, (179.5 - INTR.cx) * FACE_Z / INTR.fx
Y0, Y1 = (49.5 - INTR.cy) * FACE_Z / INTR.fy, (129.5 - INTR.cy) * FACE_Z / INTR.fy
MM = 1e-3


def render(
    h: int = H, w: int = W, intr: Intrinsics = INTR, holes: float = 0.1, flying: bool = True, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(depth in metres with NaN holes, the face's silhouette) on an h x w grid seen through ``intr``."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    x, y = (u - intr.cx) / intr.fx * FACE_Z, (v - intr.cy) / intr.fy * FACE_Z
    face = (x >= X0) & (x <= X1) & (y >= Y0) & (y <= Y1)
    depth = np.where(face, FACE_Z, WALL_Z)
    if flying:
        grown = face.copy()
        grown[1:] |= face[:-1]
        grown[:-1] |= face[1:]
        grown[:, 1:] |= face[:, :-1]
        grown[:, :-1] |= face[:, 1:]
        ring = grown & ~face
        depth[ring] = rng.uniform(FACE_Z, WALL_Z, ring.sum())
    depth[rng.random((h, w)) < holes] = np.nan
    return depth, face


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(r):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def to_16uc1(depth: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(depth), 0, np.round(depth * 1000)).astype(np.uint16)


def expected_box(p: float, footprint: float = FACE_Z / INTR.fx) -> tuple[np.ndarray, np.ndarray]:
    """The documented extent of a flat face seen square-on, from the analytic face.

    Samples are pixel centres, uniformly spread over the face less half a pixel each side; the
    p-th percentile of a uniform spread, widened back by that half pixel.
    """
    span = 0.5 * footprint
    lo, hi = np.array([X0, Y0, FACE_Z]), np.array([X1, Y1, FACE_Z])
    inner = (hi - lo) - np.array([2 * span, 2 * span, 0.0])
    return lo + p * inner, hi - p * inner


def test_box_position_and_extent_within_1mm_of_the_analytic_values():
    depth, face = render()
    mask = dilate(face, 2)
    loc = locate_objects(torch.from_numpy(mask[None]), to_16uc1(depth), INTR)
    centre = np.array([(X0 + X1) / 2, (Y0 + Y1) / 2, FACE_Z])
    got = loc.position[0].numpy()
    lo, hi = expected_box(0.01)
    print(
        f"\nsynthetic box: position error {np.abs(got - centre).max() / MM:.3f} mm, extent error "
        f"{np.abs(loc.extent[0].numpy() - (hi - lo)).max() / MM:.3f} mm, corners error "
        f"{max(np.abs(loc.minimum[0].numpy() - lo).max(), np.abs(loc.maximum[0].numpy() - hi).max()) / MM:.3f} mm"
    )
    assert bool(loc.valid[0])
    np.testing.assert_allclose(got, centre, atol=1 * MM)
    np.testing.assert_allclose(loc.minimum[0].numpy(), lo, atol=1 * MM)
    np.testing.assert_allclose(loc.maximum[0].numpy(), hi, atol=1 * MM)
    np.testing.assert_allclose(loc.extent[0].numpy(), hi - lo, atol=1 * MM)
    # Every face pixel with depth is an inlier; wall pixels are not, nor flying pixels beyond 3 cm of the face.
    face_samples = int((face & ~np.isnan(depth)).sum())
    near_face = int((mask & ~face & (np.abs(depth - FACE_Z) <= 0.03)).sum())
    every = locate_objects(mask, to_16uc1(depth), INTR, max_samples=None)  # no subsampling: exact counts
    assert int(every.num_inliers[0]) == face_samples + near_face < int(every.num_samples[0])
    np.testing.assert_allclose(every.position[0].numpy(), centre, atol=1 * MM)
    np.testing.assert_allclose(every.extent[0].numpy(), hi - lo, atol=1 * MM)
    # By default about max_samples (8192) of the mask's samples are used.
    assert int(loc.num_samples[0]) == int(every.num_samples[0]) and 4000 < int(loc.num_inliers[0]) < 8192


def test_full_percentiles_give_the_full_face():
    """With percentiles 0/100 (no flying pixels to reject) the box is the face itself."""
    depth, face = render(flying=False, holes=0.0)
    loc = locate_objects(face, depth, INTR, percentiles=(0.0, 100.0))
    np.testing.assert_allclose(loc.minimum[0].numpy(), [X0, Y0, FACE_Z], atol=1e-6)
    np.testing.assert_allclose(loc.maximum[0].numpy(), [X1, Y1, FACE_Z], atol=1e-6)


def test_without_outlier_rejection_the_estimate_would_be_wrong():
    """The flying pixels and the bleeding mask matter: a plain mean of the masked depth is off by centimetres."""
    depth, face = render()
    mask = dilate(face, 2)
    naive = np.nanmean(np.where(mask, depth, np.nan))
    assert naive - FACE_Z > 0.02
    loc = locate_objects(mask, depth, INTR)
    assert abs(float(loc.position[0, 2]) - FACE_Z) < 1 * MM


def test_16uc1_and_32fc1_agree_and_holes_are_ignored():
    depth, face = render(holes=0.3, seed=3)
    mask = dilate(face, 2)[None]
    from_mm = locate_objects(mask, to_16uc1(depth), INTR)
    from_m = locate_objects(mask, depth.astype(np.float32), INTR)
    as_tensor = locate_objects(
        torch.from_numpy(mask), torch.from_numpy(to_16uc1(depth).astype(np.int32)), INTR, depth_scale=0.001
    )
    for other in (from_m, as_tensor):
        np.testing.assert_allclose(from_mm.position.numpy(), other.position.numpy(), atol=1e-5)
        np.testing.assert_allclose(from_mm.extent.numpy(), other.extent.numpy(), atol=1e-5)
        assert from_mm.num_samples.tolist() == other.num_samples.tolist()
    # Holes (NaN in 32FC1, 0 in 16UC1) are not samples.
    eroded_face_pixels = int((dilate(face, 0)[2:-2, 2:-2]).sum())
    assert int(from_mm.num_samples[0]) < eroded_face_pixels * 0.8
    assert np.isfinite(from_mm.position.numpy()).all()


def test_too_few_samples_are_flagged_with_nan_not_a_number():
    depth, face = render(holes=0.0)
    tiny = np.zeros((H, W), bool)
    tiny[88:91, 118:121] = True  # 9 pixels
    in_hole = face.copy()
    holed = depth.copy()
    holed[face] = np.nan  # every face pixel is a hole
    masks = np.stack([face, tiny, np.zeros((H, W), bool)])
    loc = locate_objects(masks, depth, INTR)
    assert loc.valid.tolist() == [True, False, False]
    assert loc.num_samples.tolist()[1:] == [9, 0]
    assert torch.isnan(loc.position[1:]).all() and torch.isnan(loc.minimum[1:]).all()
    holed_loc = locate_objects(in_hole, holed, INTR)
    assert not bool(holed_loc.valid[0]) and int(holed_loc.num_samples[0]) == 0
    assert torch.isnan(holed_loc.position).all()


def test_small_masks_fall_back_to_the_uneroded_mask():
    """Erosion would leave a 6 x 6 mask on the face's edge 2 x 2 pixels, all on the wall; the whole mask decides."""
    depth, face = render(holes=0.0, flying=False)
    small = np.zeros((H, W), bool)
    small[80:86, 56:62] = True  # columns 56..59 on the wall, 60..61 on the face
    small[82:84, 58:60] = False  # and the wall part's centre is not in the mask
    loc = locate_objects(small, depth, INTR, min_samples=20, percentiles=(0.0, 100.0))
    assert bool(loc.valid[0]) and int(loc.num_samples[0]) == 32
    # Most of the mask is on the wall: that is the dominant depth, and only wall pixels are inliers.
    assert abs(float(loc.position[0, 2]) - WALL_Z) < 1e-6
    assert int(loc.num_inliers[0]) == int((small & ~face).sum())


def test_batched_equals_one_by_one_and_empty_batches_work():
    depth, face = render()
    other = np.zeros((H, W), bool)
    other[10:40, 10:50] = True  # on the wall
    masks = np.stack([dilate(face, 2), other, face])
    batched = locate_objects(masks, depth, INTR)
    for i in range(3):
        single = locate_objects(masks[i : i + 1], depth, INTR)
        np.testing.assert_allclose(batched.position[i].numpy(), single.position[0].numpy(), atol=1e-6)
        np.testing.assert_allclose(batched.extent[i].numpy(), single.extent[0].numpy(), atol=1e-6)
    assert abs(float(batched.position[1, 2]) - WALL_Z) < 1e-6
    empty = locate_objects(np.zeros((0, H, W), bool), depth, INTR)
    assert empty.position.shape == (0, 3) and empty.valid.shape == (0,)


def test_depth_at_half_resolution_scales_the_intrinsics():
    """Depth rendered at 120 x 90 through the scaled camera; masks and intrinsics stay at 240 x 180."""
    half = Intrinsics(INTR.fx / 2, INTR.fy / 2, (INTR.cx + 0.5) / 2 - 0.5, (INTR.cy + 0.5) / 2 - 0.5)
    depth, _ = render(H // 2, W // 2, half, holes=0.0, flying=False)
    _, face = render(holes=0.0, flying=False)
    loc = locate_objects(face, depth, INTR, percentiles=(0.0, 100.0), erode=1)
    np.testing.assert_allclose(loc.position[0].numpy(), [(X0 + X1) / 2, (Y0 + Y1) / 2, FACE_Z], atol=1 * MM)
    np.testing.assert_allclose(loc.minimum[0].numpy(), [X0, Y0, FACE_Z], atol=1 * MM)
    np.testing.assert_allclose(loc.maximum[0].numpy(), [X1, Y1, FACE_Z], atol=1 * MM)
    # Intrinsics that say they describe the depth image are used as they are.
    same = locate_objects(face, depth, half._replace(width=W // 2, height=H // 2), percentiles=(0.0, 100.0), erode=1)
    np.testing.assert_allclose(same.position.numpy(), loc.position.numpy(), atol=1e-6)


@pytest.mark.parametrize("shape", [(150, 200), (90, 240), (100, 100)])
def test_resolution_mismatch_is_refused_not_mis_scaled(shape):
    depth = np.ones(shape, np.float32)
    _, face = render(holes=0.0)
    with pytest.raises(IntrinsicsError, match="depth is|intrinsics for"):
        locate_objects(face, depth, INTR)


def test_intrinsics_forms():
    k = [[600.0, 0, 119.5], [0, 600.0, 89.5], [0, 0, 1]]  # any camera
    assert (
        as_intrinsics(k)[:4] == as_intrinsics((600, 600, 119.5, 89.5))[:4] == parse_intrinsics("600,600,119.5,89.5")[:4]
    )
    for bad in ("600,600,1", "a,b,c,d", "0,600,1,1"):
        with pytest.raises(IntrinsicsError):
            parse_intrinsics(bad)
    with pytest.raises(IntrinsicsError, match="skew"):
        as_intrinsics([[600.0, 1, 119.5], [0, 600.0, 89.5], [0, 0, 1]])


def test_intrinsics_from_camera_info():
    from sam2_ros.ros.interfaces.typesys import typestore

    types = typestore().types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c")
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    info = types["sensor_msgs/msg/CameraInfo"](
        header=header,
        height=480,
        width=640,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=np.array([525.0, 0, 319.5, 0, 525.0, 239.5, 0, 0, 1]),
        r=np.eye(3).reshape(-1),
        p=np.zeros(12),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )
    assert intrinsics_from_camera_info(info) == Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
    info.k = np.zeros(9)
    with pytest.raises(IntrinsicsError, match="uncalibrated"):
        intrinsics_from_camera_info(info)


def test_masked_points_are_on_the_face_with_their_labels():
    depth, face = render(holes=0.0, flying=False)
    masks = np.stack([face, np.zeros((H, W), bool)])
    points, labels = masked_points(masks, to_16uc1(depth), INTR, labels=[7, 9], stride=4)
    assert len(points) == len(labels) > 0 and set(labels.tolist()) == {7}
    pts = points.numpy()
    assert np.allclose(pts[:, 2], FACE_Z)
    assert (pts[:, 0] >= X0).all() and (pts[:, 0] <= X1).all() and (pts[:, 1] >= Y0).all() and (pts[:, 1] <= Y1).all()
    assert len(points) == int(face[::4, ::4].sum())
