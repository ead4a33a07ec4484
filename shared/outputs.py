"""Outputs that are whole or absent: a file or a folder is written beside its target and renamed onto it at the end.

Every ``--out`` of the command line, every trace file and every export to this machine's disk goes through
:func:`atomic_output`. The place is checked, and the staging entry created, before any computation starts, so an
unwritable path costs nothing; the work then writes into a hidden sibling (``.NAME.partial-XXXX``) and only a
run that finishes renames it onto ``NAME``. A failed or interrupted run (an exception, Ctrl-C, SIGTERM turned into
an exception by the command line) removes its staging entry and leaves the previous complete output, or nothing. A
rerun into the same place replaces the old output as a whole: the old one is moved aside, the new one moved in,
the old one removed, so chunks of two runs never mix.

A process killed outright (SIGKILL, power loss) can leave a hidden ``.NAME.partial-XXXX`` entry, never a ``NAME``
that looks finished; the next run into the same place removes such leftovers once their process is gone.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import uuid
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Literal

from simfleet.shared.errors import ConfigError, printable

Kind = Literal["file", "folder"]


def check_writable(path: str | Path, *, flag: str, kind: Kind = "folder", owned: Collection[str] = ()) -> Path:
    """Refuse, with ``flag`` named, a place where an output of ``kind`` cannot be written; return it absolute.

    The nearest existing ancestor must be a folder; an existing ``path`` must be of the right kind, and an existing
    folder may hold only entries named in ``owned`` (what the command writes there): an output replaces the folder
    whole, so ``--out .`` or ``--out`` naming an inputs folder must not delete what the user keeps there.
    Permission is proven by :func:`atomic_output` creating its staging entry, which also holds for root and
    read-only mounts.
    """
    target = Path(os.path.abspath(Path(path).expanduser()))
    if target.name in ("", ".", ".."):
        raise ConfigError(f"{path}: name a {kind} to write, not {target}", key=flag)
    if target.exists() or target.is_symlink():
        if kind == "folder":
            if not target.is_dir():
                raise ConfigError(f"{path} exists and is not a folder", key=flag)
            _refuse_foreign(target, path, flag, owned)
        elif target.is_dir():
            raise ConfigError(f"{path} is a folder; name a file", key=flag)
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{path}: {ancestor} is not a folder", key=flag)
    return target


def _refuse_foreign(target: Path, path: str | Path, flag: str, owned: Collection[str]) -> None:
    try:
        foreign = sorted(entry.name for entry in target.iterdir() if entry.name not in owned)
    except OSError as exc:
        raise ConfigError(f"{printable(path, 200)} cannot be read: {exc.strerror or exc}", key=flag) from None
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        earlier = f"an earlier output of this command ({', '.join(owned)})" if owned else "nothing"
        raise ConfigError(
            f"{printable(path, 200)} holds {printable(foreign[0])}{more}; it may hold only {earlier}, since an output "
            "replaces the folder whole; name a new or empty folder",
            key=flag,
        )


@contextlib.contextmanager
def atomic_output(path: str | Path, *, flag: str, kind: Kind = "folder", owned: Collection[str] = ()) -> Iterator[Path]:
    """Yield a staging path to write ``path``'s content into; on success it replaces ``path`` as a whole.

    Args:
        path: the output the caller asked for.
        flag: how the caller named it (``--out``), for errors.
        kind: ``folder`` (the staging folder exists when yielded) or ``file`` (the staging file does not).
        owned: the names the command writes in its folder; an existing folder holding anything else is refused.

    Raises:
        ConfigError: the place cannot hold the output (not a folder, holds other files, no permission, read-only),
            before any work.
    """
    target = check_writable(path, flag=flag, kind=kind, owned=owned)
    _remove_leftovers(target)
    staging = _sibling(target, "partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "folder":
            staging.mkdir()
        else:
            staging.touch()
            staging.unlink()
    except OSError as exc:
        raise ConfigError(f"{path} cannot be written: {exc.strerror or exc}", key=flag) from None
    try:
        yield staging
        _replace(staging, target, kind)
    finally:
        _remove(staging)


def _replace(staging: Path, target: Path, kind: Kind) -> None:
    if kind == "file" and not staging.exists():
        staging.touch()
    old = _sibling(target, "old")
    if target.exists() or target.is_symlink():
        target.rename(old)
    staging.rename(target)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


_ROLES = ("partial", "old")
"""The hidden siblings of an output: the one being written, and the previous one while it is moved aside."""


def _sibling(target: Path, role: str) -> Path:
    """``.NAME.ROLE-PID-XXXX`` beside ``target``: hidden, this process's, unique."""
    return target.parent / f"{_prefix(target, role)}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _prefix(target: Path, role: str) -> str:
    return f".{target.name}.{role}-"


def _remove_leftovers(target: Path) -> None:
    """Staging and set-aside entries of earlier runs into ``target`` whose process is gone (killed outright)."""
    if not target.parent.is_dir():
        return
    for prefix in (_prefix(target, role) for role in _ROLES):
        for entry in target.parent.glob(f"{glob.escape(prefix)}*"):
            pid = entry.name.removeprefix(prefix).partition("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                _remove(entry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
