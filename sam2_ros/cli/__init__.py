"""``sam2-ros`` command line: download checkpoints, track objects in videos and bags, segment images, annotate.

One module per subcommand (``track``, ``segment``, ``annotate``); ``main`` and the error mapping live here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sam2_ros.errors import UsageError, UserError


def _cmd_download(args: argparse.Namespace) -> int:
    from sam2_ros.download import DEFAULT_DIR, DownloadError, download  # noqa: PLC0415 - keeps `--help` fast
    from sam2_ros.model.config import checkpoint_filename  # noqa: PLC0415 - keeps `--help` fast

    try:
        out = download(
            args.model,
            out_dir=args.out or DEFAULT_DIR,
            sha256=args.sha256,
            url=args.url,
            progress=not args.quiet,
            force=args.force,
        )
    except KeyError as exc:  # an unknown model name (model.config names the known ones)
        raise UsageError(exc.args[0] if exc.args else str(exc)) from None
    except DownloadError as exc:  # say what to do on a machine that cannot reach the server
        raise UserError(
            f"{exc}; pass --url with a mirror or a local copy of {checkpoint_filename(args.model)} "
            f"(path or file:// URL), or try `sam2-ros track --random-weights` for a smoke run "
            f"without weights"
        ) from exc
    print(out)
    return 0


def _add_download(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        help="fetch one of Meta's official checkpoints and verify it",
        description="Download MODEL (e.g. sam2.1_hiera_tiny, sam2.1_hiera_b+, edgetam) from Meta's servers, "
        "check its SHA-256 and that it fits the model, and print its path.",
    )
    p.add_argument("model", help="model name, e.g. sam2.1_hiera_tiny / sam2.1_hiera_t / sam2_hiera_large / edgetam")
    p.add_argument(
        "--out",
        type=Path,
        help="folder for checkpoints (default: $SAM2_ROS_CHECKPOINTS or ~/.cache/sam2_ros/checkpoints)",
    )
    p.add_argument("--sha256", help="expected SHA-256 hex digest (recommended for reproducible setups)")
    p.add_argument(
        "--url", help="download from this URL instead of Meta's: a mirror, or a local file (path or file:// URL)"
    )
    p.add_argument("--force", action="store_true", help="download again even if the file exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_download)


def _cmd_track(args: argparse.Namespace) -> int:
    from sam2_ros.cli.track import run  # noqa: PLC0415 - subcommand loaded on use

    return run(args)


def _add_track(sub: argparse._SubParsersAction) -> None:
    from sam2_ros.cli.track import add_arguments  # noqa: PLC0415 - subcommand loaded on use

    p = sub.add_parser(
        "track",
        help="track prompted objects through a video, image folder or camera",
        description="Track objects in INPUT (video file, image folder or camera index) from "
        "--point/--box prompts; write label PNGs, an overlay video and summary.json. "
        "A prompt @N is applied to frame N as a correction, like a tap on the live "
        "frame.",
    )
    add_arguments(p)
    p.set_defaults(func=_cmd_track)


def _cmd_segment(args: argparse.Namespace) -> int:
    from sam2_ros.cli.segment import run  # noqa: PLC0415 - subcommand loaded on use

    return run(args)


def _add_segment(sub: argparse._SubParsersAction) -> None:
    from sam2_ros.cli.segment import add_arguments  # noqa: PLC0415 - subcommand loaded on use

    p = sub.add_parser(
        "segment",
        help="segment single images from --point/--box prompts, or everything (--auto)",
        description="SAM 2 image mode on an image or a folder of images: masks for --point/--box "
        "prompts (one encoding per image, all objects decoded from it), or automatic "
        "masks for everything (--auto). Writes labels/, overlays/ and results.json.",
    )
    add_arguments(p)
    p.set_defaults(func=_cmd_segment)


def _cmd_annotate(args: argparse.Namespace) -> int:
    from sam2_ros.cli.annotate import run  # noqa: PLC0415 - subcommand loaded on use

    return run(args)


def _add_annotate(sub: argparse._SubParsersAction) -> None:
    from sam2_ros.cli.annotate import add_arguments  # noqa: PLC0415 - subcommand loaded on use

    p = sub.add_parser(
        "annotate",
        help="label many videos, image folders and bags on Ray (label PNGs, COCO, manifest)",
        description="Track prompted objects through every INPUT with the same tracker as `track`, "
        "on Ray workers, into a resumable dataset: per input label PNGs and COCO "
        "annotations with RLE masks, and DATASET/manifest.json. Needs the annotate "
        "extra: pip install 'sam2_ros[annotate]'.",
    )
    add_arguments(p)
    p.set_defaults(func=_cmd_annotate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam2-ros", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_download(sub)
    _add_track(sub)
    _add_segment(sub)
    _add_annotate(sub)
    return parser


def run_command(args: argparse.Namespace, prog: str) -> int:
    """Run the chosen subcommand; our own user errors become one clear line and exit code 2.

    One line: ``UserError`` and its subclasses (bad settings, unreadable inputs, outputs that
    cannot be written, refused prompts, corrupt exports and engines), a file or the network
    failing (``OSError``), a bag rosbags cannot read or write. Anything else, a ``ValueError``,
    ``KeyError`` or ``RuntimeError`` of our own code included, is a bug and keeps its traceback.
    """
    try:
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl+C is the user's choice, not a failure: no traceback, the shell's 130
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, _expected_errors()):
            raise
        print(f"{prog} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _expected_errors() -> tuple[type[BaseException], ...]:
    kinds: list[type[BaseException]] = [UserError, OSError]
    bag_errors = sys.modules.get("rosbags.rosbag2.errors")  # loaded only once a bag was opened
    if bag_errors is not None:  # a bag the user named that rosbags cannot read or write
        kinds += [bag_errors.ReaderError, bag_errors.WriterError]
    return tuple(kinds)


def _one_line(exc: BaseException) -> str:
    """The error's message on one line (library messages such as YAML parser errors span several)."""
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return " ".join(str(msg).split()) or type(exc).__name__


#: Options whose values may start with "-" (a negative number in a prompt).
_SIGNED_VALUE_OPTIONS = ("--point", "--box")


def _join_signed_values(argv: list[str]) -> list[str]:
    """``--point -3:10,10`` -> ``--point=-3:10,10``.

    argparse takes any word starting with "-" that is not a plain negative number for an
    option, and would answer "expected one argument"; joined, the value reaches the prompt
    parser, whose error says what is wrong with it.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if word in _SIGNED_VALUE_OPTIONS and len(nxt) > 1 and nxt[0] == "-" and (nxt[1].isdigit() or nxt[1] == "."):
            out.append(f"{word}={nxt}")
            i += 2
            continue
        out.append(word)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = _join_signed_values(list(sys.argv[1:] if argv is None else argv))
    return run_command(build_parser().parse_args(argv), "sam2-ros")


if __name__ == "__main__":
    sys.exit(main())
