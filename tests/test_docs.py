"""The README and docs/ stay true: links, anchors, the two commands, every documented flag, file pointers.

What is checked (no model runs; a few seconds):

* every relative link and ``#anchor`` in README.md, docs/*.md and the other READMEs resolves (anchors
  as GitHub makes them from headings); links inside HTML comments are TODO notes and are skipped;
* the README's two commands exist: the first runs ``scripts/setup.sh`` and the main job, the second is
  ``bash scripts/test.sh``, which ``.ci/run`` calls;
* every ``sam2-ros SUB --flag`` and ``python -m export SUB --flag`` in README.md and docs/*.md names a
  subcommand and flag that exist (``sam2_ros.cli.build_parser``, ``export.__main__.build_parser``), and
  every ``ros2 launch sam2_ros tracker.launch.py NAME:=`` names a launch argument;
* every pointer to a file of the repository (``tests/test_x.py::test_y``, ``benchmarks/...``,
  ``sam2_ros/...``) exists;
* the README has at most 250 lines, and docs/README.md lists every page of docs/.

The checkers are also run on small wrong inputs, so each can fail.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from export.__main__ import build_parser as export_parser
from sam2_ros.cli import build_parser as cli_parser

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"

README_MAX_LINES = 250


def doc_pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def linked_pages() -> list[Path]:
    """Pages whose links are checked: the docs and the other READMEs of the repository."""
    others = [REPO / p for p in ("ros/README.md", "msg/README.md", "engines/README.md")]
    return doc_pages() + [p for p in others if p.is_file()]


# ----------------------------------------------------------------------------- markdown helpers
FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.M | re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)


def without_comments(text: str) -> str:
    return COMMENT.sub("", text)


def prose(text: str) -> str:
    """The text outside fenced code blocks and HTML comments."""
    return FENCE.sub("", without_comments(text))


def code_blocks(text: str) -> list[str]:
    return [m.group(0).split("\n", 1)[1].rsplit("\n", 1)[0] for m in FENCE.finditer(without_comments(text))]


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(text).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_anchor(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(page: Path, text: str) -> list[str]:
    """Relative links of ``text`` (the content of ``page``) whose file or anchor does not exist."""
    problems = []
    for target in LINK.findall(prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        try:
            rel = dest.relative_to(REPO).as_posix()
        except ValueError:
            problems.append(f"{target}: outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{target}: {rel} does not exist")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{target}: no heading #{anchor} in {rel}")
    return problems


# ----------------------------------------------------------------------------- commands and flags
def subcommands(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: {o for act in p._actions for o in act.option_strings} for name, p in sub.choices.items()}


PROGRAMS = {"sam2-ros": subcommands(cli_parser()), "python -m export": subcommands(export_parser())}
COMMAND = re.compile(r"(?<![\w-])(sam2-ros|python -m export)\s+([A-Za-z_.][\w.-]*)")
COMMAND_END = re.compile(r"&&|\|\||;|\s&\s|(?<![\w-])(?:sam2-ros|python|ros2|bash|pip|cd)\s")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def command_texts(text: str) -> list[str]:
    """Shell commands as written: fenced code blocks (continuation lines joined) and inline code spans."""
    texts = [block.replace("\\\n", " ") for block in code_blocks(text)]
    texts += [m.group(2).replace("\n", " ") for m in INLINE_CODE.finditer(prose(text))]
    return texts


def unknown_flags(text: str, programs: dict[str, dict[str, set[str]]] = PROGRAMS) -> list[str]:
    problems = []
    for chunk in command_texts(text):
        for line in chunk.splitlines():
            for m in COMMAND.finditer(line):
                program, sub = m.groups()
                if not re.fullmatch(r"[a-z][a-z0-9-]*", sub):  # a placeholder such as COMMAND or ...
                    continue
                if sub not in programs[program]:
                    problems.append(f"`{program} {sub}`: no such subcommand")
                    continue
                rest = line[m.end() :]
                end = COMMAND_END.search(rest)
                rest = rest[: end.start()] if end else rest
                rest = rest.split("#", 1)[0] if " #" in rest else rest  # a trailing shell comment
                problems += [
                    f"`{program} {sub} {flag}`: no such option"
                    for flag in FLAG.findall(rest)
                    if flag not in programs[program][sub]
                ]
    return problems


SCRIPT = re.compile(r"(?<![\w-])python3? ((?:benchmarks|docs)/\w+\.py)")


def unknown_script_flags(text: str) -> list[str]:
    """``python benchmarks/x.py --flag``: each flag must be declared in the script (``"--flag"``)."""
    problems = []
    for chunk in command_texts(text):
        for line in chunk.splitlines():
            for m in SCRIPT.finditer(line):
                script = REPO / m.group(1)
                if not script.is_file():
                    problems.append(f"{m.group(1)}: does not exist")
                    continue
                source = script.read_text(encoding="utf-8")
                rest = line[m.end() :]
                end = COMMAND_END.search(rest)
                rest = (rest[: end.start()] if end else rest).split(" #", 1)[0]
                problems += [
                    f"`{m.group(1)} {f}`: no such option" for f in FLAG.findall(rest) if f'"{f}"' not in source
                ]
    return problems


def launch_arguments() -> set[str]:
    """Launch arguments of launch/tracker.launch.py, read from its source (launch is not installed here)."""
    tree = ast.parse((REPO / "launch" / "tracker.launch.py").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "PARAMETER_ARGUMENTS" for t in node.targets):
            try:
                names |= set(ast.literal_eval(node.value))
            except ValueError:  # built from the settings table: every parameter is an argument
                from sam2_ros.ros.node.params import parameter_specs

                names |= {s.name for s in parameter_specs()}
    return names


def unknown_launch_arguments(text: str, known: set[str]) -> list[str]:
    problems = []
    for chunk in command_texts(text):
        for line in chunk.splitlines():
            if "tracker.launch.py" not in line:
                continue
            rest = COMMAND_END.split(line.split("tracker.launch.py", 1)[1])[0]
            problems += [
                f"{name}:= is not a launch argument" for name in re.findall(r"(\w+):=", rest) if name not in known
            ]
    return problems


# ----------------------------------------------------------------------------- file pointers
POINTER = re.compile(
    r"(?<![\w/.-])((?:tests|benchmarks|scripts|sam2_ros|export|config|launch|msg|ros)/[\w./-]*)(?:::(\w+))?"
)


def missing_pointers(text: str) -> list[str]:
    """Repository paths named in inline code (``tests/test_x.py::test_y``) that do not exist."""
    problems = []
    for m in INLINE_CODE.finditer(prose(text)):
        for path, name in POINTER.findall(m.group(2)):
            if "*" in path or "..." in path:
                continue
            target = REPO / path.rstrip(".")
            if not target.exists():
                problems.append(f"{path}: does not exist")
            elif name and not re.search(rf"^\s*(?:async\s+)?def {name}\b", target.read_text(encoding="utf-8"), re.M):
                problems.append(f"{path}::{name}: no such test")
    return problems


# ----------------------------------------------------------------------------- the docs themselves
@pytest.mark.parametrize("page", linked_pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_links_and_anchors_resolve(page):
    assert broken_links(page, page.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_documented_commands_have_their_flags(page):
    text = page.read_text(encoding="utf-8")
    assert unknown_flags(text) == []
    assert unknown_script_flags(text) == []
    assert unknown_launch_arguments(text, launch_arguments()) == []


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_pointers_to_tests_and_benchmarks_exist(page):
    assert missing_pointers(page.read_text(encoding="utf-8")) == []


def test_readme_two_commands_run_real_scripts():
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Two commands\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "README.md needs its '## Two commands' section"
    setup, tests = code_blocks(section.group(1))
    assert setup.startswith("bash scripts/setup.sh && ") and "sam2-ros track " in setup
    assert tests.strip() == "bash scripts/test.sh"
    for script in re.findall(r"bash (\S+)", setup + "\n" + tests):
        assert (REPO / script).is_file(), script
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text(encoding="utf-8"), ".ci/run must run the test command"
    assert "scripts/setup.sh" in (REPO / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert re.search(r"^\s*sam2-ros = sam2_ros\.cli:main$", (REPO / "setup.cfg").read_text(encoding="utf-8"), re.M)


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move details into docs/"


def test_docs_index_lists_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    listed = {(DOCS / t).resolve().relative_to(REPO).as_posix() for t in LINK.findall(prose(index)) if "://" not in t}
    pages = {p.relative_to(REPO).as_posix() for p in DOCS.glob("*.md")} - {"docs/README.md"}
    assert pages - listed == set(), "list these pages in docs/README.md"


# ----------------------------------------------------------------------------- the checkers can fail
def test_checkers_catch_wrong_links_flags_arguments_and_pointers():
    page = DOCS / "status.md"
    bad = (
        "[a](missing.md) [b](parity.md#no-such-heading) [c](parity.md#model-and-streaming-tracker) "
        "[d](outputs.md) ![e](dataflow.png) [f](https://example.com/x)\n"
    )
    assert broken_links(page, bad) == [
        "missing.md: docs/missing.md does not exist",
        "parity.md#no-such-heading: no heading #no-such-heading in docs/parity.md",
    ]
    assert broken_links(page, "<!-- [x](gone.md) -->\n```\n[y](gone.md)\n```\n") == []

    text = (
        "```bash\nsam2-ros track IN --out o \\\n    --no-such-flag 1 && sam2-ros segment x --auto\n```\n"
        "`sam2-ros trak x` `python -m export onnx --model m --fp16` `sam2-ros COMMAND: error: ...`\n"
    )
    assert unknown_flags(text) == [
        "`sam2-ros track --no-such-flag`: no such option",
        "`sam2-ros trak`: no such subcommand",
        "`python -m export onnx --fp16`: no such option",
    ]
    scripts = "`python benchmarks/bench_objects.py --counts 1,4 --no-such-flag` `python benchmarks/nothing.py`"
    assert unknown_script_flags(scripts) == [
        "`benchmarks/bench_objects.py --no-such-flag`: no such option",
        "benchmarks/nothing.py: does not exist",
    ]
    launch = "```bash\nros2 launch sam2_ros tracker.launch.py image_size:=256 imagesize:=256 && ros2 x a:=b\n```\n"
    assert unknown_launch_arguments(launch, launch_arguments()) == ["imagesize:= is not a launch argument"]
    assert {"image_topic", "click_topic", "rqt", "lifecycle", "image_size", "random_weights"} <= launch_arguments()

    pointers = "`tests/test_tracker.py::test_no_such_test`, `tests/test_nothing.py`, `benchmarks/bench_objects.py`."
    assert missing_pointers(pointers) == [
        "tests/test_tracker.py::test_no_such_test: no such test",
        "tests/test_nothing.py: does not exist",
    ]


def test_github_anchors():
    assert github_anchor("Ours vs Meta's predictor, one clip") == "ours-vs-metas-predictor-one-clip"
    assert github_anchor("Many objects: cost per added object (`x.py`)") == "many-objects-cost-per-added-object-xpy"
    assert github_anchor("trtexec (Jetson)") == "trtexec-jetson"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}
