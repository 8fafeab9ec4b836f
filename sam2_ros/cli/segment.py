"""``sam2-ros segment IMAGE_OR_FOLDER``: SAM 2 on single images, prompted or automatic.

Each image is encoded once; every prompted object is decoded from that encoding (objects
with the same kind of prompt in one batch), or ``--auto`` runs the automatic mask
generator. Per image ``STEM`` the output folder gets:

* ``labels/STEM.png``: label image, pixel = object id (``--auto``: mask number 1..N by
  decreasing area, 16-bit when there are more than 255 masks), 0 = background;
* ``overlays/STEM.png``: the image with the masks tinted, boxes and ids;
* ``candidates/STEM_objID_K.png`` (``--multimask``): all three candidate masks of each object;
* ``results.json``: per image and object the predicted IoU, box and area (``--multimask``:
  each candidate's predicted IoU; ``--auto``: Meta's records with COCO RLE masks).

Prompts are the ``track`` command's ``--point``/``--box``; ``@N`` restricts a prompt to the
N-th image of a folder (natural order), without it a prompt applies to every image.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from tqdm import tqdm

from sam2_ros.cli.track import add_model_arguments
from sam2_ros.errors import InputError, OutputError, UsageError
from sam2_ros.io.prompts import BOX_FORMAT, POINT_FORMAT, ObjectPrompt, build_schedule, parse_box, parse_point
from sam2_ros.io.sources import IMAGE_SUFFIXES, natural_key, read_image
from sam2_ros.settings import add_options
from sam2_ros.utils.files import StagedDir, atomic_write

if TYPE_CHECKING:
    from sam2_ros.image import AutomaticMaskGenerator, SamImagePredictor


def _number(kind: type, minimum: float, maximum: float | None = None):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="an image (jpg/png) or a folder of them")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output folder: labels/, overlays/, results.json; written whole on success, nothing on "
        "failure; must be new or empty unless --overwrite",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out folder (whole, once the run succeeded)"
    )
    p.add_argument(
        "--skip-bad-frames",
        action="store_true",
        help="skip images that cannot be decoded (truncated/corrupt), recording them in results.json "
        "(default: stop with an error)",
    )
    p.add_argument(
        "--point",
        type=parse_point,
        action="append",
        default=[],
        metavar=POINT_FORMAT,
        help="click in image pixels; LABEL 1 = object (default), 0 = background; @N: only the N-th "
        "image of a folder (default: every image); repeatable",
    )
    p.add_argument(
        "--box",
        type=parse_box,
        action="append",
        default=[],
        metavar=BOX_FORMAT,
        help="box in image pixels; combines with --point for the same object; repeatable",
    )
    p.add_argument(
        "--multimask",
        action="store_true",
        help="ask for three candidate masks per object and write them all (candidates/) with their "
        "predicted IoUs; the label image keeps the best (default: three candidates only for a "
        "single click, as SAM 2 does)",
    )
    auto = p.add_argument_group("automatic masks (--auto; Meta's SAM2AutomaticMaskGenerator defaults)")
    auto.add_argument("--auto", action="store_true", help="segment everything: a grid of clicks, filtered")
    auto.add_argument(
        "--points-per-side",
        type=_number(int, 1),
        default=32,
        metavar="N",
        help="grid of N x N clicks per image (default %(default)s); fewer is faster, misses small objects",
    )
    auto.add_argument(
        "--points-per-batch",
        type=_number(int, 1),
        default=64,
        metavar="N",
        help="clicks decoded at once; memory vs speed, same masks (default %(default)s)",
    )
    auto.add_argument(
        "--pred-iou-thresh",
        type=_number(float, 0.0, 1.0),
        default=0.8,
        metavar="T",
        help="drop masks whose predicted IoU is below T (default %(default)s)",
    )
    auto.add_argument(
        "--stability-score-thresh",
        type=_number(float, 0.0, 1.0),
        default=0.95,
        metavar="T",
        help="drop masks that change under a small threshold shift: stability below T (default %(default)s)",
    )
    auto.add_argument(
        "--box-nms-thresh",
        type=_number(float, 0.0, 1.0),
        default=0.7,
        metavar="T",
        help="of masks whose boxes overlap by IoU above T keep the best (default %(default)s)",
    )
    auto.add_argument(
        "--crop-n-layers",
        type=_number(int, 0),
        default=0,
        metavar="N",
        help="also run on 4^k crops for k = 1..N, for small objects; slower (default %(default)s)",
    )
    auto.add_argument(
        "--min-mask-region-area",
        type=_number(int, 0),
        default=0,
        metavar="AREA",
        help="fill holes / drop specks up to AREA low-res pixels (default 0: off)",
    )
    add_model_arguments(p)
    add_options(p, ["image_size", "device"])
    p.add_argument("--no-overlay", action="store_true", help="do not write overlays/")


#: The ``--auto`` options: ``AutomaticMaskGenerator`` keyword arguments, also recorded in results.json.
AUTO_SETTINGS = (
    "points_per_side",
    "points_per_batch",
    "pred_iou_thresh",
    "stability_score_thresh",
    "box_nms_thresh",
    "crop_n_layers",
    "min_mask_region_area",
)


def _auto_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in AUTO_SETTINGS}


def list_images(spec: str) -> list[Path]:
    """The image INPUT names: one file, or a folder's jpg/png files in natural order."""
    path = Path(spec)
    if path.is_dir():
        paths = sorted(
            (q for q in path.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda q: natural_key(q.name),
        )
        if not paths:
            raise InputError(f"{path} holds no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images")
        return paths
    if not path.exists():
        raise InputError(f"input {spec!r} does not exist (expected an image or a folder of images)")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"{path} is not a {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} image")
    return [path]


def output_stems(paths: list[Path]) -> list[str]:
    """One output name per image, all different: ``x.jpg`` and ``x.png`` become ``x_jpg`` and ``x_png``.

    Names are compared case-insensitively (``X.png`` and ``x.png`` collide on macOS/Windows
    file systems), so no image's labels ever overwrite another's.
    """
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.stem.lower()] = counts.get(p.stem.lower(), 0) + 1
    stems: list[str] = []
    taken: set[str] = set()
    for p in paths:
        stem = p.stem if counts[p.stem.lower()] == 1 else f"{p.stem}_{p.suffix[1:].lower()}"
        candidate, n = stem, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{stem}_{n}"
        taken.add(candidate.lower())
        stems.append(candidate)
    return stems


def prompts_for(index: int, args: argparse.Namespace) -> list[ObjectPrompt]:
    """This image's prompts, one ``ObjectPrompt`` per object (prompts without @N apply to every image)."""
    points = [dataclasses.replace(p, frame=index) for p in args.point if "@" not in p.text or p.frame == index]
    boxes = [dataclasses.replace(b, frame=index) for b in args.box if "@" not in b.text or b.frame == index]
    return build_schedule(points, boxes).get(index, [])


def run(args: argparse.Namespace) -> int:
    if not args.auto and not (args.point or args.box):
        raise UsageError("give prompts (--point/--box) or --auto")
    if args.auto and (args.point or args.box or args.multimask):
        raise UsageError("--auto finds the objects itself; drop --point/--box/--multimask")
    paths = list_images(args.input)
    folder_size = len(paths)
    late = sorted({p.frame for p in [*args.point, *args.box] if "@" in p.text and p.frame >= folder_size})
    if late:
        raise UsageError(f"prompts for images {late} but {args.input} has {folder_size} image(s) (@N counts from 0)")
    stems = output_stems(paths)
    with StagedDir(args.out, args.overwrite) as staged:  # an --out in use is refused before the model loads
        model, weights, model_name = _build_model(args)
        try:
            return _segment(args, paths, stems, staged, model, weights, model_name)
        except KeyboardInterrupt:
            print(f"interrupted: nothing written to {args.out}", file=sys.stderr)
            return 130


def _segment(
    args: argparse.Namespace,
    paths: list[Path],
    stems: list[str],
    staged: StagedDir,
    model: Any,
    weights: str,
    model_name: str,
) -> int:
    out = staged.path
    for sub in ("labels", *(() if args.no_overlay else ("overlays",)), *(("candidates",) if args.multimask else ())):
        (out / sub).mkdir(parents=True, exist_ok=True)

    from sam2_ros.image import AutomaticMaskGenerator, SamImagePredictor  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    predictor = generator = None
    if args.auto:
        generator = AutomaticMaskGenerator(model, **_auto_settings(args))
    else:
        predictor = SamImagePredictor(model)
    images: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    no_prompts: list[str] = []
    no_masks: list[str] = []
    t_start = time.perf_counter()
    for index, (path, stem) in enumerate(zip(paths, tqdm(stems, unit="image", desc="segment", dynamic_ncols=True))):
        try:
            bgr = read_image(path, index if len(paths) > 1 else None)
        except InputError as exc:
            if not args.skip_bad_frames:
                raise InputError(f"{exc}; fix or remove it, or pass --skip-bad-frames to skip it") from None
            skipped.append({"input_index": index, "file": str(path), "reason": str(exc)})
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        t0 = time.perf_counter()
        if generator is not None:
            labels, objects, entry = _segment_auto(generator, rgb)
            if not entry["objects"]:
                no_masks.append(path.name)
        else:
            prompts = prompts_for(index, args)
            if not prompts:
                no_prompts.append(path.name)
            labels, objects, entry = _segment_prompted(predictor, rgb, prompts, args.multimask, out, stem)
        entry = {
            "image": str(path),
            "label": f"labels/{stem}.png",
            **({} if args.no_overlay else {"overlay": f"overlays/{stem}.png"}),
            "height": rgb.shape[0],
            "width": rgb.shape[1],
            "ms": round((time.perf_counter() - t0) * 1e3, 1),
            **entry,
        }
        _write_png(out / "labels" / f"{stem}.png", labels)
        if not args.no_overlay:
            from sam2_ros.utils.draw import draw_overlay  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

            _write_png(out / "overlays" / f"{stem}.png", draw_overlay(rgb, labels, objects))
        images.append(entry)
    if not images:
        raise InputError(f"none of the {len(paths)} image(s) of {args.input} could be decoded")
    renamed = {str(p): f"labels/{st}.png" for p, st in zip(paths, stems) if st != p.stem}
    warnings = []
    if renamed:
        warnings.append(
            f"{len(renamed)} image(s) share a name with another (e.g. {next(iter(renamed))}): their outputs "
            f"are named after the file's extension too (see results.json 'renamed')"
        )
    if skipped:
        bad = [Path(s["file"]).name for s in skipped]
        warnings.append(f"skipped {len(skipped)} image(s) that cannot be decoded: {_names(bad)}")
    if no_prompts:
        warnings.append(f"no prompts for {len(no_prompts)} image(s) (their labels are empty): {_names(no_prompts)}")
    if no_masks:
        warnings.append(f"--auto found no masks in {len(no_masks)} image(s): {_names(no_masks)}")
    doc = {
        "model": model_name,
        "weights": weights,
        "image_size": model.image_size,
        "device": str(model.device),
        "mode": "auto" if args.auto else "prompted",
        "warnings": warnings,
        "skipped": skipped,
        "renamed": renamed,
        "images": images,
        "wall_s": round(time.perf_counter() - t_start, 3),
    }
    if args.auto:
        doc["settings"] = _auto_settings(args)
    atomic_write(out / "results.json", json.dumps(doc, indent=1) + "\n")
    staged.publish()
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(f"segmented {len(images)} image(s): {args.out}")
    return 0


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")


def _build_model(args: argparse.Namespace):
    import torch  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    from sam2_ros.factory import resolve_checkpoint, resolve_device, warn_random_weights  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.model import build_sam2, canonical_name  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    name = canonical_name(args.model)
    device = resolve_device(args.device)
    checkpoint = resolve_checkpoint(args.checkpoint, name, args.random_weights)
    if checkpoint is None:
        torch.manual_seed(0)  # reproducible smoke runs
        warn_random_weights()
    model = build_sam2(name, checkpoint, image_size=args.image_size, device=device)
    return model.eval(), "random" if checkpoint is None else str(checkpoint), name


def _segment_prompted(
    predictor: SamImagePredictor,
    rgb: np.ndarray,
    prompts: list[ObjectPrompt],
    multimask: bool | None,
    out: Path,
    stem: str,
):
    """Encode once; decode objects in batches of equal prompt shape (same clicks count, box or not)."""
    from sam2_ros.tracking import PromptError  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.tracking.results import ObjectResult  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    predictor.set_image(rgb)
    h, w = rgb.shape[:2]
    groups: dict[tuple[bool, int], list[ObjectPrompt]] = {}
    for prompt in prompts:
        groups.setdefault((prompt.box is not None, len(prompt.points)), []).append(prompt)
    logits: dict[int, np.ndarray] = {}
    found: dict[int, dict[str, Any]] = {}
    for (has_box, n_points), group in groups.items():
        use_multi = multimask or predictor.model.use_multimask(True, n_points + 2 * has_box)
        kwargs: dict[str, Any] = {"multimask_output": use_multi, "return_logits": True}
        if n_points:
            kwargs["point_coords"] = np.array([g.points for g in group], dtype=np.float64)
            kwargs["point_labels"] = np.array([g.labels for g in group])
        if has_box:
            kwargs["box"] = np.array([g.box for g in group], dtype=np.float64)
        try:
            masks, ious, _ = predictor.predict(**kwargs)
        except PromptError as exc:
            raise PromptError(f"{stem}: {', '.join(t for g in group for t in g.texts)}: {exc}") from exc
        masks, ious = masks.reshape(len(group), -1, h, w), ious.reshape(len(group), -1)
        for g, m, iou in zip(group, masks, ious):
            best = int(np.argmax(iou))
            logits[g.obj_id] = m[best]
            found[g.obj_id] = {"id": g.obj_id, "predicted_iou": round(float(iou[best]), 4), "prompts": g.texts}
            if multimask:
                found[g.obj_id]["candidates"] = []
                for k in range(len(iou)):
                    name = f"{stem}_obj{g.obj_id}_{k}.png"
                    _write_png(out / "candidates" / name, (m[k] > 0).astype(np.uint8) * 255)
                    found[g.obj_id]["candidates"].append(
                        {"file": f"candidates/{name}", "predicted_iou": round(float(iou[k]), 4), "best": k == best}
                    )
    ids = sorted(logits)
    labels = np.zeros((h, w), dtype=np.uint8)
    objects = []
    if ids:
        stack = np.stack([logits[i] for i in ids])
        winner = np.argmax(stack, axis=0)
        labels = np.where((stack > 0).any(axis=0), np.array(ids, dtype=np.uint8)[winner], 0).astype(np.uint8)
        for i, obj_id in enumerate(ids):
            mask = stack[i] > 0
            box = _box(mask)
            found[obj_id].update({"box": None if box is None else [round(v, 1) for v in box], "area": int(mask.sum())})
            # the overlay's number is the predicted IoU (a probability-like score)
            objects.append(ObjectResult(obj_id, mask, _logit(found[obj_id]["predicted_iou"]), box is not None, box))
    return labels, objects, {"objects": [found[i] for i in ids]}


def _segment_auto(generator: AutomaticMaskGenerator, rgb: np.ndarray):
    from sam2_ros.image.amg import coco_rle  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.tracking.results import ObjectResult  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    records = sorted(generator.generate(rgb), key=lambda r: r["area"], reverse=True)
    h, w = rgb.shape[:2]
    labels = np.zeros((h, w), dtype=np.uint8 if len(records) < 256 else np.uint16)
    objects, entries = [], []
    for i, rec in enumerate(records, start=1):
        mask = rec["segmentation"]
        labels[mask] = i  # larger masks first: smaller ones stay visible on top
        x, y, bw, bh = rec["bbox"]
        box = (x, y, x + bw, y + bh)
        if i < 256:
            objects.append(ObjectResult(i, mask, _logit(rec["predicted_iou"]), True, box))
        entries.append(
            {"id": i, **{k: v for k, v in rec.items() if k != "segmentation"}, "segmentation": coco_rle(mask)}
        )
    return labels, objects, {"objects": entries}


def _box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def _logit(p: float) -> float:
    """Inverse sigmoid, so the overlay (which shows sigmoid(score)) prints the predicted IoU."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise OutputError(f"could not encode {path}")
    atomic_write(path, png.tobytes(), fsync=False)
