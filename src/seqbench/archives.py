"""Safe, all-or-nothing extraction of downloaded archives (.zip, .tar.gz / .tgz / .tar).

Archives come from the network or from a folder someone filled by hand, so every entry is checked
before it is written: no absolute paths, no `..` leading out of the folder, no symbolic or hard links,
no devices or fifos. Entries go to a temporary folder beside the destination that is renamed into
place only when the whole archive was read (and an optional check passed), so a truncated archive
leaves nothing half-extracted.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from seqbench.errors import DataError

_CORRUPT = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile)


def archive_kind(name: str) -> str:
    lowered = name.lower()
    if lowered.endswith(".zip"):
        return "zip"
    if lowered.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
        return "tar"
    raise DataError(f"{name}: not a known archive type (expected .zip, .tar.gz, .tgz or .tar)")


def member_path(name: str, label: str) -> str | None:
    """The entry's normalized relative path, None for the archive root; DataError if it escapes."""
    cleaned = name.replace("\\", "/")
    if cleaned.startswith("/") or re.match(r"^[A-Za-z]:", cleaned):
        raise DataError(f"{label}: refusing archive entry {name!r}: absolute path. "
                        "The archive is unsafe; delete it and get a clean copy.")
    normalized = posixpath.normpath(cleaned)
    if normalized == ".." or normalized.startswith("../"):
        raise DataError(f"{label}: refusing archive entry {name!r}: it leads outside the extraction folder (`..`). "
                        "The archive is unsafe; delete it and get a clean copy.")
    return None if normalized in (".", "") else normalized


def _skipped(path: str, skip: Sequence[str]) -> bool:
    return any(path == prefix.rstrip("/") or path.startswith(prefix.rstrip("/") + "/") for prefix in skip)


def _extract_tar(archive: Path, into: Path, label: str, skip: Sequence[str]) -> None:
    # stream mode: one sequential pass over the compressed file
    with tarfile.open(archive, "r|*") as tar:
        for member in tar:
            path = member_path(member.name, label)
            if member.issym() or member.islnk():
                kind = "symbolic link" if member.issym() else "hard link"
                raise DataError(f"{label}: refusing archive entry {member.name!r}: a {kind} "
                                f"(to {member.linkname!r}). The archive is unsafe; delete it and get a clean copy.")
            if not (member.isfile() or member.isdir()):
                raise DataError(f"{label}: refusing archive entry {member.name!r}: a device, fifo or other "
                                "special file. The archive is unsafe; delete it and get a clean copy.")
            if path is None or _skipped(path, skip):
                continue
            target = into / path
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)


def _extract_zip(archive: Path, into: Path, label: str, skip: Sequence[str]) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = member_path(info.filename, label)
            mode = info.external_attr >> 16  # unix mode bits, 0 when the archiver stored none
            if stat.S_ISLNK(mode):
                raise DataError(f"{label}: refusing archive entry {info.filename!r}: a symbolic link. "
                                "The archive is unsafe; delete it and get a clean copy.")
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise DataError(f"{label}: refusing archive entry {info.filename!r}: a device, fifo or other "
                                "special file. The archive is unsafe; delete it and get a clean copy.")
            if path is None or _skipped(path, skip):
                continue
            target = into / path
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, open(target, "wb") as out:  # zipfile checks each CRC
                shutil.copyfileobj(source, out, 1 << 20)


def extract(
    archive: Path,
    dest: Path,
    *,
    label: str | None = None,
    skip: Sequence[str] = (),
    check: Callable[[Path], None] | None = None,
) -> list[str]:
    """Extract `archive` into `dest`; return the top-level names placed there.

    label: the name used in messages and to pick the archive type (default: the archive's name; the
    download stage extracts from a temporary file). skip: entry path prefixes not extracted.
    check(folder): called on the complete temporary extraction before anything is moved into place.
    """
    label = label or archive.name
    kind = archive_kind(label)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{Path(label).name}.", suffix=".extract", dir=dest))
    try:
        try:
            (_extract_zip if kind == "zip" else _extract_tar)(archive, tmp, label, skip)
        except _CORRUPT as error:
            raise DataError(f"{label}: the archive is truncated or corrupt ({type(error).__name__}: {error}). "
                            "Delete it (and its copy in the mirror folder, if it came from one) and re-run "
                            "the download.") from None
        if check is not None:
            check(tmp)
        names = sorted(os.listdir(tmp))
        for name in names:
            target = dest / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(tmp / name, target)
        return names
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
