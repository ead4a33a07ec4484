"""Everything that crosses the broker, declared: msgspec Structs on the fleet's msgpack (or JSON) wire format.

A message is built as a Struct, put on the wire as plain data (:func:`to_wire`: maps, lists, numbers, strings), and
validated when it is read (:func:`decode`): a missing or mistyped field, an unknown field, or a value out of its
declared range is a :class:`~simfleet.shared.errors.MessageError` that names the message and the field
(``$.epoch``). Defaults live in the Struct definitions and nowhere else.

- :mod:`.lifecycle`: a lifecycle job's spec, the message of each of its stages, its progress and its summary;
- :mod:`.des`: the figures of a DES replication and the aggregate of a study;
- :mod:`.study`: what a ``des.run`` task receives, and a replication's progress.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec

from simfleet.shared.errors import MessageError
from simfleet.shared.ids import ID_PATTERN

WorkId = Annotated[str, msgspec.Meta(pattern=f"^{ID_PATTERN.pattern}$")]
"""A job or study id in a message: the rule of :mod:`simfleet.shared.ids`, so that a hand-crafted message whose id
would name a path (``../../x``) or a foreign key is refused when a worker decodes it, before any id reaches a store."""


class Message(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base of every declared message: keyword construction, immutable, unknown fields refused on decode."""


T = TypeVar("T")


def _error(exc: msgspec.ValidationError, kind: type[Any], what: str | None) -> MessageError:
    reason, _, where = str(exc).partition(" - at ")
    return MessageError(what or str(getattr(kind, "__name__", kind)), reason, path=where.replace("`", ""))


def decode(kind: type[T], value: Any, *, what: str | None = None) -> T:
    """``value`` (plain data off the wire) as a ``kind``, validated.

    Raises:
        MessageError: naming ``what`` (default: the type's name), the field and what is wrong with it.
    """
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise _error(exc, kind, what) from exc


def decode_json(kind: type[T], raw: bytes | str, *, what: str | None = None) -> T:
    """A ``kind`` from its JSON text (as records in Redis keep messages), validated like :func:`decode`.

    Raises:
        MessageError: not JSON, or not a valid ``kind`` (naming the field).
    """
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise _error(exc, kind, what) from exc
    except msgspec.DecodeError as exc:
        raise MessageError(what or str(getattr(kind, "__name__", kind)), f"not JSON: {exc}") from exc


def to_wire(message: Any) -> Any:
    """A message as plain data for the broker's serialiser (msgpack or JSON)."""
    return msgspec.to_builtins(message)


__all__ = ["Message", "WorkId", "decode", "decode_json", "to_wire"]
