"""Files a user hands simfleet (scenarios, settings, ``meta.yaml``, input tables), opened and read safely.

Every problem is an error naming the file (and the key where there is one), raised before anything blocks or
grows without bound:

- only a regular file is opened, without blocking and checked on the open descriptor: a FIFO, a device
  (``/dev/zero``), a socket or a folder is refused at once; a symlink loop or a permission problem is refused with
  the system's reason;
- text is sniffed before it is parsed: compressed data, a Parquet file, UTF-16, NUL bytes and bytes that are not
  UTF-8 are each named (``gzip-compressed data; expected plain UTF-8 text``);
- a text file is read up to ``max_bytes`` (the error says the limit);

and for YAML:

- nesting is at most ``max_depth`` collections deep, checked on the event stream before anything is composed, so
  a file of 50,000 ``[`` cannot exhaust the stack, and again with aliases expanded (a chain of aliases, each nesting
  the previous one deeper, passes the first check);
- the data the file would expand to, counting every alias (``*name``) as a copy of what it names, holds at most
  ``max_nodes`` values, so an alias bomb ("billion laughs") is refused after composing a few hundred bytes; the
  walk that counts is not recursive;
- a key may appear once in a mapping (YAML itself would keep the last one silently);
- a value YAML cannot build (an integer of more than 4,300 digits) is an error naming the file;
- YAML's implicit timestamps are off: ``2025-02-30`` stays text for the reader to check and name, instead of
  failing inside the YAML library.

libyaml's parser (``CSafeLoader``) does the work when PyYAML was built with it, which reads a 200,000-value list in
well under a second.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from simfleet.shared.errors import ConfigError, printable

SNIFF_BYTES = 4096
"""How much of a file is looked at to tell text from binary, compressed or UTF-16 data before parsing it."""

COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PK\x03\x04": "zip",
}
"""The magic numbers of compressed files, and their names for errors."""


class Refused(Exception):
    """A file that is not read: not a regular file, not openable, or not of the expected format (the reason)."""


def _loader() -> Any:
    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader: Any = type("UserFileLoader", (base,), {})
    loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in base.yaml_implicit_resolvers.items()
    }
    return loader


Loader: Any = _loader()
"""libyaml's safe loader where PyYAML has it (else the pure-Python one), without implicit timestamps."""


@contextlib.contextmanager
def open_regular(path: str | Path) -> Iterator[BinaryIO]:
    """Open ``path`` for reading only if it is a regular file (after symlinks), without ever blocking.

    Raises:
        Refused: with the reason, for the caller to wrap in its own error naming the file.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise Refused(f"cannot be opened: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise Refused(f"is {_file_kind(mode)}, not a regular file")
        os.set_blocking(descriptor, True)
        handle = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    with handle:
        yield handle


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
             (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def text_problem(head: bytes) -> str | None:
    """Why the first bytes of a file are not UTF-8 text, or ``None`` when they are."""
    for magic, name in COMPRESSED.items():
        if head.startswith(magic):
            return f"{name}-compressed data; expected plain UTF-8 text (decompress it first)"
    if head.startswith(b"PAR1"):
        return "a Parquet file; expected text"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text; expected UTF-8 (save it as UTF-8)"
    if b"\x00" in head:
        return "binary data (NUL bytes); expected UTF-8 text"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        return (
            f"not UTF-8 text (byte {printable(head[exc.start : exc.start + 1])} at offset {exc.start}); expected UTF-8"
        )
    return None


def _say(what: str, text: str) -> str:
    return f"{what} {text}" if what else text


def read_text_file(path: str | Path, *, max_bytes: int, what: str, error: type[ConfigError] = ConfigError) -> str:
    """The UTF-8 text of the regular file ``path``, of at most ``max_bytes``; ``what`` names it in errors."""
    source = str(path)
    try:
        with open_regular(path) as handle:
            data = handle.read(max_bytes + 1)
    except Refused as exc:
        raise error(_say(what, str(exc)), source=source) from None
    except OSError as exc:
        raise error(_say(what, f"cannot be read: {exc.strerror or exc}"), source=source) from None
    if len(data) > max_bytes:
        raise error(_say(what, f"is larger than the limit of {max_bytes:,} bytes"), source=source)
    problem = text_problem(data[:SNIFF_BYTES])
    if problem:
        raise error(_say(what, f"is {problem}"), source=source)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(_say(what, f"is not UTF-8 text (at offset {exc.start}); save it as UTF-8"), source=source) from None


def read_yaml(
    path: str | Path,
    *,
    what: str,
    max_bytes: int,
    max_depth: int = 32,
    max_nodes: int = 100_000,
    error: type[ConfigError] = ConfigError,
) -> Any:
    """The data of the YAML file ``path``, under the rules of this module.

    Raises:
        ConfigError (or ``error``): naming the file, and the key of a duplicate.
    """
    text = read_text_file(path, max_bytes=max_bytes, what=what, error=error)
    return parse_yaml(text, source=str(path), what=what, max_depth=max_depth, max_nodes=max_nodes, error=error)


def parse_yaml(
    text: str,
    *,
    source: str,
    what: str = "the file",
    max_depth: int = 32,
    max_nodes: int = 100_000,
    error: type[ConfigError] = ConfigError,
) -> Any:
    """The data of YAML ``text`` (from ``source``), checked for nesting, size after aliases and repeated keys.

    The steps run cheapest first: the nesting depth on the event stream (the composer recurses once per level),
    then one walk of the composed graph without recursion, every alias expanded, counting values, depth (an alias
    can put a deep collection inside another one) and repeated keys, before any value is built.
    """
    try:
        _check_depth(text, source, what, max_depth, error)
        loader = Loader(text)
        try:
            node = loader.get_single_node()
            _walk(node, source, what, max_depth, max_nodes, error)
            return None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {printable(_one_line(exc), 300)}", source=source) from None
    except (ValueError, OverflowError) as exc:  # an integer beyond Python's digit limit, and the like
        raise error(f"a value cannot be read: {printable(exc, 200)}", source=source) from None


def _check_depth(text: str, source: str, what: str, max_depth: int, error: type[ConfigError]) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise error(_say(what, f"nests deeper than {max_depth} levels (line {line})"), source=source)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _walk(root: yaml.Node | None, source: str, what: str, max_depth: int, max_nodes: int,
          error: type[ConfigError]) -> None:  # fmt: skip
    if root is None:
        return
    count = 0
    stack: list[tuple[yaml.Node, int, str]] = [(root, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        count += 1
        if count > max_nodes:
            raise error(
                _say(what, f"holds more than {max_nodes:,} values once aliases are expanded"),
                source=source,
            )
        if depth > max_depth + 1:
            raise error(_say(what, f"nests deeper than {max_depth} levels once aliases are expanded"), source=source)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                if key in seen:
                    raise error("duplicate key: each name may appear once in a mapping", source=source,
                                key=printable(child, 200))  # fmt: skip
                seen.add(key)
                stack.append((key_node, depth + 1, child))
                stack.append((value_node, depth + 1, child))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1, f"{path}[{i}]") for i, item in enumerate(node.value))


def _one_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else str(problem)
