"""Reading a scenario file safely: a regular file of bounded size, UTF-8 YAML of bounded depth and expanded size.

Each check runs before the next, more expensive step: the file's kind and size are read with ``stat`` before it is
opened (a FIFO or a device would block the reader, a directory cannot be read; this part is
:func:`simfleet.shared.user_files.read_text_file`, the rule of every YAML file), the event stream's nesting depth
is checked before anything is composed (the composer recurses once per level), and the composed graph is walked
once, without recursion, with every alias expanded, counting its values and its depth before any value is built or
walked by recursive code (a "billion laughs" file composes in microseconds but expands to 10^9 values; a chain of
aliases, each nesting the previous one a few levels deeper, passes a depth check on the event stream but would
overflow the stack of a recursive walk). Values YAML cannot build (an integer of more than 4300 digits) are errors
naming the file. The limits are in :mod:`simfleet.worker.des.limits`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simfleet.shared.errors import ScenarioError, printable
from simfleet.shared.user_files import read_text_file
from simfleet.worker.des.limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_YAML_NODES

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it (about 8 times faster on a large file), else PyYAML's."""


def read_text(path: str | Path, source: str) -> str:
    """The file's text: a regular UTF-8 file of at most ``MAX_FILE_BYTES`` (the rules of every YAML file)."""
    return read_text_file(path, max_bytes=MAX_FILE_BYTES, what="scenario file", error=ScenarioError)


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
