"""Rotating backups of the config file beside it: ``<file>.bak1`` is the newest, ``<file>.bakN`` the oldest."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import ConfigNotWritableError, NotFoundError


def backup_path(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.bak{n}")


def backup(path: Path | None, keep: int) -> Path:
    """Copy ``path`` to ``.bak1`` after shifting ``.bak1`` .. ``.bak{keep-1}`` up by one (``.bak{keep}``
    falls off). The copy is written to a temporary file and renamed, so ``.bak1`` is never half written."""
    if path is None:
        raise NotFoundError("Hangar runs on the embedded default configuration: there is no file to back up")
    folder = path.parent
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotFoundError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK):
        raise ConfigNotWritableError(f"{folder}: the folder is not writable; no backup was made")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ConfigNotWritableError(f"{folder}: the folder is not writable ({exc.strerror or exc}); "
                                     "no backup was made") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileNotFoundError):
            backup_path(path, keep).unlink()
        for n in range(keep - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(backup_path(path, n), backup_path(path, n + 1))
        target = backup_path(path, 1)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ConfigNotWritableError(f"{folder}: cannot write the backup: {exc.strerror or exc}") from None
    return target


def backups(path: Path) -> list[Path]:
    """The existing backups of ``path``, newest first."""
    found = []
    n = 1
    while backup_path(path, n).exists():
        found.append(backup_path(path, n))
        n += 1
    return found
