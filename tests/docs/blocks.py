"""The fenced blocks of the project's documents, read the way tests/docs/test_docs.py runs them.

A block is a fenced code block (three backticks, optionally indented, as inside a list item). The first word of its
info string is its language; a fence without one is refused, so every block says whether it is run. An HTML comment
on the line right before the fence gives the block's directives, separated by ``;``:

- ``<!-- docs-test: needs fleet -->``: the local fleet is up when the block runs;
- ``<!-- docs-test: exit N -->``: the block ends with exit status N (default 0);
- ``<!-- docs-test: output -->`` (before a ``text`` block): what the runnable block before it prints;
- ``<!-- docs-test: skip REASON -->``: not run, for the reason given (listed by the test).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_LANGUAGES = {"sh": "sh", "bash": "sh", "python": "python"}
SHOWN_LANGUAGES = {"text", "yaml", "json", "toml", "sql", "ini", "dockerfile", "promql", "csv", "diff"}
DIRECTIVES = ("needs fleet", "exit", "output", "skip")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+)(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")


class DocsFormatError(ValueError):
    """A document's block or directive the docs test cannot read (naming the file and line)."""


@dataclass
class Block:
    """One fenced block of a document.

    Attributes:
        doc: the document, relative to the repository root.
        line: the line of its opening fence (1-based).
        language: the first word of the info string.
        text: its content, with the fence's indentation removed.
        needs_fleet: the local fleet must be up.
        exit_code: the exit status expected.
        output: this is the shown output of the runnable block before it.
        skip: why it is not run (empty: it is run if its language is a run language).
        expected_output: for a runnable block, the ``output`` block after it.
    """

    doc: str
    line: int
    language: str
    text: str
    needs_fleet: bool = False
    exit_code: int = 0
    output: bool = False
    skip: str = ""
    expected_output: Block | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """``doc:line``, for messages and test ids."""
        return f"{self.doc}:{self.line}"

    @property
    def runs(self) -> bool:
        """Whether the docs test runs it."""
        return self.language in RUN_LANGUAGES and not self.skip

    @property
    def named_query(self) -> bool:
        """A BI query (``-- name: ...`` first), run by tests/clickhouse/test_bi.py."""
        return self.language == "sql" and self.text.startswith("-- name:")


def documents() -> list[Path]:
    """README.md, then docs/*.md in name order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _directives(block: Block, body: str) -> None:
    for part in (p.strip() for p in body.split(";")):
        if part in ("needs fleet", "output"):
            setattr(block, part.replace(" ", "_"), True)
        elif re.fullmatch(r"exit \d{1,3}", part):
            block.exit_code = int(part.split()[1])
        elif part.startswith("skip ") and part[5:].strip():
            block.skip = part[5:].strip()
        else:
            known = ", ".join(DIRECTIVES)
            raise DocsFormatError(f"{block.where}: unknown docs-test directive {part!r} (known: {known}; skip needs a"
                                  " reason, exit a number)")  # fmt: skip


def read_blocks(path: Path, errors: list[str], root: Path = ROOT) -> list[Block]:
    """The fenced blocks of ``path``, in order, each linked to the output block that follows it.

    A block the test cannot read (a fence without a language, an unknown directive, an output block that follows no
    runnable block) is left out, and why is appended to ``errors``; an unclosed fence ends the reading.
    """
    doc = path.relative_to(root).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    number = 0
    while number < len(lines):
        opening = _FENCE.match(lines[number])
        if opening is None:
            number += 1
            continue
        indent, fence, info = opening.group("indent"), opening.group("fence"), opening.group("info").strip()
        start = number
        body: list[str] = []
        number += 1
        while number < len(lines) and not re.fullmatch(rf"[ \t]*{fence}\s*", lines[number]):
            line = lines[number]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            number += 1
        if number == len(lines):
            errors.append(f"{doc}:{start + 1}: the block opened here has no closing fence")
            break
        number += 1
        try:
            blocks.append(_block(doc, start, info, body, lines, blocks))
        except DocsFormatError as exc:
            errors.append(str(exc))
    return blocks


def _block(doc: str, start: int, info: str, body: list[str], lines: list[str], before: list[Block]) -> Block:
    if not info:
        raise DocsFormatError(f"{doc}:{start + 1}: a fence without a language: name it (```sh and ```python are "
                              "run by tests/docs; ```text, ```yaml, ... are shown only)")  # fmt: skip
    block = Block(doc, start + 1, info.split()[0].lower(), "\n".join(body) + "\n")
    if start > 0 and (directive := _DIRECTIVE.match(lines[start - 1])):
        _directives(block, directive.group("body"))
    if block.language not in RUN_LANGUAGES and block.language not in SHOWN_LANGUAGES:
        run, shown = ", ".join(sorted(RUN_LANGUAGES)), ", ".join(sorted(SHOWN_LANGUAGES))
        raise DocsFormatError(f"{block.where}: language {block.language!r} is neither run ({run}) nor shown ({shown})")
    if block.output:
        previous = before[-1] if before else None
        if previous is None or not previous.runs or block.language != "text":
            raise DocsFormatError(f"{block.where}: an output block must be ```text right after a block that runs")
        previous.expected_output = block
    return block


_TIMING = re.compile(r"\d[\d,]*(?:\.\d+)?(?=\s?(?:s|ms|days/s|events/s|req/s|rows/s|MiB|GiB|%)(?![\w/]))")


def masked(text: str) -> str:
    """``text`` with timings, rates, sizes and percentages as ``#`` and runs of blanks as one space."""
    return re.sub(r"[ \t]+", " ", _TIMING.sub("#", text))


def missing_lines(expected: str, output: str) -> list[str]:
    """The lines of a shown output (``...`` lines aside) that the real output lacks, each compared masked."""
    seen = masked(output)
    wanted = [line.strip() for line in expected.splitlines() if line.strip() not in ("", "...", "…")]
    return [line for line in wanted if masked(line) not in seen]
