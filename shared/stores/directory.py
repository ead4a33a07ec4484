"""Blobs as files under a root directory: ``<root>/<job_id>/<name>``.

For one machine, or a fleet whose machines share a filesystem (NFS, a compose volume). Writes are atomic: the blob
goes to a temporary file in the target's own folder (``.<name>.<random>.tmp``, which no key can name), is fsynced,
renamed over the target (atomic on POSIX), and the folder is fsynced, so after a crash a key holds the old blob, the
new one, or nothing, and never part of one. Temporary files never show in :meth:`DirectoryStore.keys`.

As in a filesystem, and unlike the other stores, a key cannot be both a blob and the folder of other keys
(``job-1/a`` and ``job-1/a/b``): the second put fails with :class:`~simfleet.shared.errors.CheckpointError`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path

from simfleet.shared.errors import CheckpointError, ConfigError
from simfleet.shared.stores.base import BlobStore, check_key, check_prefix

TEMP_SUFFIX = ".tmp"


class DirectoryStore(BlobStore):
    """Blobs as files under ``root`` (created on the first write).

    Args:
        root: the directory; a relative path is resolved against the current directory now.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        """The file of ``key``, which must lie under the root once every link on the way is followed.

        :func:`check_key` already refuses ``..`` and absolute keys; this also refuses a key that a symbolic link
        inside the root (a job folder linked elsewhere) would lead outside it, so no key can name a file
        outside the store, whatever the folder holds.

        Raises:
            ConfigError: naming the key and the root.
        """
        path = self.root.joinpath(*check_key(key).split("/"))
        if not path.resolve().is_relative_to(self.root):
            raise ConfigError(f"bad blob key {key!r}: it resolves outside the store's root {self.root}", key=key)
        return path

    def _fail(self, key: str, action: str, exc: OSError) -> CheckpointError:
        reason = exc.strerror or str(exc)
        return CheckpointError(f"{self.url}: {key}: cannot {action}: {reason}")

    def put(self, key: str, blob: bytes) -> None:
        """Write ``blob`` atomically (temporary file, fsync, rename, fsync of the folder)."""
        target = self._path(key)
        folder = target.parent
        partial = folder / f".{target.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as out:
                out.write(blob)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
            _fsync_folder(folder)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise self._fail(key, "write", exc) from exc

    def get(self, key: str) -> bytes:
        """The blob under ``key``."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError) as exc:  # NotADirectory: a blob where a folder would be
            raise CheckpointError(f"{self.url}: {key}: no such blob") from exc
        except OSError as exc:
            raise self._fail(key, "read", exc) from exc

    def delete(self, key: str) -> None:
        """Remove the file (missing is fine)."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except NotADirectoryError:
            return  # a blob where a folder of the key would be: the key is missing
        except OSError as exc:
            if exc.errno in (errno.EISDIR, errno.EPERM) and path.is_dir():
                return  # a folder of other keys, not a blob
            raise self._fail(key, "delete", exc) from exc

    def _walk(self, prefix: str) -> tuple[list[str], list[Path], list[Path]]:
        """Keys under ``prefix`` (sorted), leftover temporary files, and the folders searched."""
        check_prefix(prefix)
        head = prefix.rpartition("/")[0]
        base = self.root.joinpath(*head.split("/")) if head else self.root
        if not base.resolve().is_relative_to(self.root):
            raise ConfigError(f"bad key prefix {prefix!r}: it resolves outside the store's root {self.root}",
                              key=prefix)  # fmt: skip
        keys: list[str] = []
        temps: list[Path] = []
        folders: list[Path] = []
        for folder, subfolders, files in os.walk(base):
            here = Path(folder)
            relative = here.relative_to(self.root).as_posix()
            stem = "" if relative == "." else relative + "/"
            # Descend only into folders that can hold a match, and never into hidden ones.
            subfolders[:] = [name for name in subfolders if not name.startswith(".") and _may_hold(stem + name, prefix)]
            if not (stem.startswith(prefix) or prefix.startswith(stem)):
                continue
            folders.append(here)
            for name in files:
                if name.startswith("."):
                    if name.endswith(TEMP_SUFFIX) and (stem + name[1:]).startswith(prefix):
                        temps.append(here / name)
                    continue
                if (stem + name).startswith(prefix):
                    keys.append(stem + name)
        return sorted(keys), temps, folders

    def keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted; temporary files of writes in progress are not keys."""
        return self._walk(prefix)[0]

    def delete_prefix(self, prefix: str) -> int:
        """Remove every blob under ``prefix``, then the folders this leaves empty (a job's folder); return the count.

        Temporary files left under ``prefix`` by a writer that died are removed too (and not counted); a write
        still in progress there fails with :class:`CheckpointError`, as it should once its job's blobs are dropped.
        """
        keys, temps, folders = self._walk(prefix)
        removed = 0
        for key in keys:
            path = self._path(key)
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._fail(key, "delete", exc) from exc
        for temp in temps:
            temp.unlink(missing_ok=True)
        # Deepest first, so a job folder emptied of its subfolders goes too; never the root itself.
        for folder in sorted(set(folders), key=lambda path: len(path.parts), reverse=True):
            if folder != self.root and (folder.relative_to(self.root).as_posix() + "/").startswith(prefix):
                with contextlib.suppress(OSError):  # not empty: keys outside the prefix, or a write in progress
                    folder.rmdir()
        return removed


def _may_hold(folder: str, prefix: str) -> bool:
    """Whether the folder ``folder`` (a relative posix path) can hold keys that start with ``prefix``."""
    return prefix.startswith(folder + "/") or folder.startswith(prefix)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
