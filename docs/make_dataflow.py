"""Draw docs/dataflow.png, the data-flow picture at the top of the README.

    pip install -e '.[docs]'   # matplotlib
    python docs/make_dataflow.py

The picture only names parts of this repository (topics, commands, files); it shows no results.
Edit the boxes below and rerun when a topic, command or file name changes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the Agg backend
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).with_name("dataflow.png")

# Colours: inputs, our code, outputs, offline build steps.
IN, CODE, OUTC, BUILD = "#dbeafe", "#fde68a", "#dcfce7", "#ede9fe"


def box(ax, x, y, w, h, title, lines=(), color=CODE, size=8.5):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec="#334155"))
    ax.text(x + w / 2, y + h - 0.13, title, ha="center", va="top", fontsize=size + 0.5, weight="bold")
    for i, line in enumerate(lines):
        ax.text(x + w / 2, y + h - 0.42 - i * 0.24, line, ha="center", va="top", fontsize=size, family="monospace")


def arrow(ax, a, b, text="", dy=0.08, style="-|>"):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=12, lw=1.2, color="#334155"))
    if text:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + dy, text, ha="center", va="bottom", fontsize=7.5)


def main() -> None:
    fig, ax = plt.subplots(figsize=(11, 4.6), dpi=100)
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 4.6)
    ax.axis("off")

    # Runtime: camera -> node -> topics.
    ax.text(0.1, 4.45, "at run time", fontsize=9, style="italic", color="#475569")
    box(
        ax,
        0.1,
        2.35,
        2.0,
        1.95,
        "camera / input",
        ["Image,", "CompressedImage", "depth + CameraInfo", "video, folder, bag"],
        IN,
    )
    box(ax, 0.1, 1.2, 2.0, 0.95, "prompts", ["taps, boxes,", "detections, services"], IN)
    box(
        ax,
        3.0,
        1.2,
        3.3,
        3.1,
        "tracker node / CLI",
        [
            "ROS shell (rclpy)",
            "  -> core (ROS-free)",
            "Sam2Tracker:",
            " image encoder",
            " memory attention",
            " mask decoder",
            " memory encoder",
            " fixed-size memory bank",
        ],
    )
    box(
        ax,
        7.0,
        1.2,
        3.9,
        3.1,
        "outputs",
        [
            "~/label_image  ~/detections",
            "~/tracked_objects",
            "~/label_info   ~/overlay",
            "~/detections_3d /diagnostics",
            "",
            "CLI: masks/*.png,",
            "overlay.mp4, summary.json,",
            "output bag, COCO dataset",
        ],
        OUTC,
    )
    arrow(ax, (2.1, 3.3), (3.0, 3.3), "newest frame")
    arrow(ax, (2.1, 1.7), (3.0, 1.7), "queued")
    arrow(ax, (6.3, 2.75), (7.0, 2.75), "every frame")

    # Offline: checkpoint -> ONNX -> engines -> backend.
    ax.text(0.1, 0.93, "before (once per model / GPU)", fontsize=9, style="italic", color="#475569")
    steps = [
        ("Meta checkpoint", "sam2-ros download"),
        ("ONNX graphs", "python -m export onnx"),
        ("TensorRT engines", "python -m export engines"),
        ("backend", "torch (the .pt) | ort | trt"),
    ]
    xs = [0.1, 2.85, 5.6, 8.35]
    for x, (title, cmd) in zip(xs, steps, strict=True):
        box(ax, x, 0.05, 2.55, 0.78, title, [cmd], BUILD, size=7.5)
    for x0, x1 in zip(xs, xs[1:], strict=False):
        arrow(ax, (x0 + 2.55, 0.44), (x1, 0.44))
    arrow(ax, (9.0, 0.83), (6.0, 1.2))

    fig.tight_layout(pad=0.2)
    fig.savefig(OUT, dpi=100)
    print(OUT)


if __name__ == "__main__":
    main()
