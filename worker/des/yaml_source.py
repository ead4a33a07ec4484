"""Reading a scenario file safely: a regular file of bounded size, UTF-8 YAML of bounded depth and expanded size.

Each check runs before the next, more expensive step: the file's kind and size are read with ``stat`` before it is
opened (a FIFO or a device would block the reader, a directory cannot be read), the event stream's nesting depth
is checked before anything is composed (PyYAML's composer recurses once per level), and the composed graph's size
with every alias expanded is counted before any value is built or walked (a "billion laughs" file composes in
microseconds but expands to 10^9 values). The limits are in :mod:`simfleet.worker.des.limits`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from simfleet.shared.errors import ScenarioError, printable
from simfleet.worker.des.limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_YAML_NODES

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it (about 8 times faster on a large file), else PyYAML's."""


def read_text(path: str | Path, source: str) -> str:
    """The file's text, refused unless it is a regular UTF-8 file of at most ``MAX_FILE_BYTES``."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file: {exc.strerror or exc}", source=source) from None
    if stat.S_ISDIR(info.st_mode):
        raise ScenarioError("is a directory: expected a scenario YAML file", source=source)
    if not stat.S_ISREG(info.st_mode):
        raise ScenarioError("is not a regular file (a FIFO, socket or device): expected a YAML file", source=source)
    if info.st_size > MAX_FILE_BYTES:
        raise ScenarioError(
            f"file is {info.st_size} bytes; a scenario file is at most {MAX_FILE_BYTES} bytes (1 MiB)", source=source
        )
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file: {exc.strerror or exc}", source=source) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(f"a scenario file is at most {MAX_FILE_BYTES} bytes (1 MiB)", source=source)
    if b"\x00" in raw:
        raise ScenarioError("contains NUL bytes (a binary file?): expected a YAML file", source=source)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"not UTF-8 text (byte {exc.start}): expected a YAML file", source=source) from None


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The YAML document of ``text`` as plain data, and its composed node graph (for key-level checks)."""
    try:
        _check_depth(text, source)
        loader = _LOADER(text)
        try:
            node = loader.get_single_node()
            _check_size(node, source)
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ScenarioError(f"not valid YAML: {printable(exc, 300)}", source=source) from None
    except (ValueError, OverflowError) as exc:
        # int() of a literal beyond Python's digit limit, a timestamp out of range, and the like.
        raise ScenarioError(f"a value cannot be read: {printable(exc, 200)}", source=source) from None
    return data, node


def _check_depth(text: str, source: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise ScenarioError(
                    f"line {line}: nesting deeper than {MAX_DEPTH} levels (the limit of a scenario file)",
                    source=source,
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_size(root: yaml.Node | None, source: str) -> None:
    """Count the values of the document with aliases expanded, without recursion, up to ``MAX_YAML_NODES``.

    The depth is checked again here: an alias can put a deep collection inside another one.
    """
    if root is None:
        return
    count = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise ScenarioError(
                f"more than {MAX_YAML_NODES} values once aliases are expanded (the limit of a scenario file)",
                source=source,
            )
        if depth > MAX_DEPTH + 1:
            raise ScenarioError(
                f"nesting deeper than {MAX_DEPTH} levels once aliases are expanded (the limit of a scenario file)",
                source=source,
            )
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)
