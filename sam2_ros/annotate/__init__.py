"""``sam2-ros annotate``: label many recordings (videos, image folders, bags) with the streaming tracker.

Why a package of its own: annotation is a batch job over a fleet's logs, run on Ray, with a
dataset on disk that survives interruptions; none of that belongs in the live tracker. Every
frame still goes through :func:`sam2_ros.io.prompts.track_frame`, so a label made here
is the label ``sam2-ros track`` (and the robot) would produce.

Modules: ``inputs`` (what to annotate, hashes), ``prompts`` (prompt file, detections, automatic
masks), ``coco`` (COCO annotations with RLE masks), ``manifest`` (dataset manifest.json),
``worker`` (one input, start to finish; Ray-free), ``runner`` (the Ray driver), the CLI is ``sam2_ros.cli.annotate``.
Ray is imported only by ``runner``, and only when the command runs.
"""
