"""YAML files read safely, every problem named with the file (and the key where there is one).

Scenarios, lifecycle ``meta.yaml`` files and fleet settings are all read here, so one set of rules holds for every
YAML file a user hands simfleet:

- only a regular file is opened (a FIFO would block, ``/dev/zero`` never ends, a folder is not a file);
- at most ``max_bytes`` are read (the error says the limit);
- the text must be UTF-8 (a UTF-8 byte-order mark is allowed; UTF-16 and binary are refused);
- nesting is at most ``max_depth`` collections deep, checked on the event stream before anything is built, so a
  file of 50,000 ``[`` cannot exhaust the stack;
- the data the file would expand to, counting every alias (``*name``) as a copy of what it names, holds at most
  ``max_nodes`` values, so an alias bomb ("billion laughs") is refused after reading a few hundred bytes;
- a key may appear once in a mapping (YAML itself would keep the last one silently).

libyaml's parser (``CSafeLoader``) does the work when PyYAML was built with it, which reads a 200,000-value list in
well under a second.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from simfleet.shared.errors import ConfigError, printable

Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def read_text_file(path: str | Path, *, max_bytes: int, what: str, error: type[ConfigError] = ConfigError) -> str:
    """The UTF-8 text of the regular file ``path``, of at most ``max_bytes``; ``what`` names it in errors."""
    source = str(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}", source=source) from None
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise error(f"{what} is {kind}; expected a regular file", source=source)
    if info.st_size > max_bytes:
        raise error(f"{what} is {info.st_size:,} bytes; the limit is {max_bytes:,}", source=source)
    try:
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}", source=source) from None
    if len(data) > max_bytes:
        raise error(f"{what} is over the limit of {max_bytes:,} bytes", source=source)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 text (byte {exc.start}); save it as UTF-8", source=source) from None


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
    """The data of YAML ``text`` (from ``source``), checked for nesting, size after aliases and duplicate keys."""
    try:
        _check_events(text, source, what, max_depth, max_nodes, error)
        duplicate = _duplicate_key(yaml.compose(text, Loader=Loader), "")
        if duplicate:
            raise error("duplicate key: each name may appear once in a mapping", source=source, key=duplicate)
        return yaml.load(text, Loader=Loader)  # CSafeLoader or SafeLoader: never the unsafe loader
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {printable(_one_line(exc), 300)}", source=source) from None


def _check_events(text: str, source: str, what: str, max_depth: int, max_nodes: int, error: type[ConfigError]) -> None:
    sizes: dict[str, int] = {}
    stack: list[tuple[str | None, int]] = []
    total = 0
    for event in yaml.parse(text, Loader=Loader):
        if isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
            size = 1 if isinstance(event, yaml.ScalarEvent) else sizes.get(event.anchor or "", 1)
            if isinstance(event, yaml.ScalarEvent) and event.anchor:
                sizes[event.anchor] = 1
            total += size
            if stack:
                stack[-1] = (stack[-1][0], stack[-1][1] + size)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            stack.append((event.anchor, 1))
            total += 1
            if len(stack) > max_depth:
                raise error(f"{what} nests deeper than {max_depth} levels", source=source)
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            anchor, size = stack.pop()
            if anchor:
                sizes[anchor] = size
            if stack:
                stack[-1] = (stack[-1][0], stack[-1][1] + size)
        if total > max_nodes:
            raise error(
                f"{what} holds more than {max_nodes:,} values (counting each alias as a copy of what it names)",
                source=source,
            )


def _duplicate_key(node: yaml.Node | None, path: str) -> str | None:
    """The dotted path of the first key that appears twice in one mapping."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in seen:
                return printable(child, 200)
            seen.add(key)
            found = _duplicate_key(value_node, child)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _duplicate_key(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _one_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else str(problem)
