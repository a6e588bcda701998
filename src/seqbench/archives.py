"""Safe, all-or-nothing extraction of downloaded archives (.zip, .tar.gz / .tgz / .tar).

Archives come from the network or from a folder someone filled by hand, so every entry is checked
before it is written: no absolute paths, no `..` leading out of the folder, no symbolic or hard links,
no devices or fifos. What they may write is bounded (`ExtractLimits`): the bytes extracted in all, and
each member's extracted-to-compressed ratio, so a decompression bomb stops at the bound instead of
filling the disk. Entries go to a temporary folder beside the destination that is renamed into place
only when the whole archive was read (and an optional check passed), so a truncated or refused archive
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
from dataclasses import dataclass
from pathlib import Path

from seqbench.errors import DataError

_CORRUPT = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile)
_CHUNK = 1 << 20
# A member's ratio is judged once it has written this much: the tar reader pulls compressed data in
# 10 KiB records, so a small member's share of them says nothing about its own compression.
RATIO_FLOOR = 1 << 20


@dataclass(frozen=True)
class ExtractLimits:
    """What one archive may write: `max_bytes` extracted in all (skipped entries not counted), and at
    most `max_ratio` extracted bytes per compressed byte in any member past RATIO_FLOOR bytes."""

    max_bytes: int
    max_ratio: float

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_ratio <= 1:
            raise ValueError(f"extract limits need max_bytes > 0 and max_ratio > 1, got {self}")


class ExtractLimitExceeded(DataError):
    """An archive wrote more than its ExtractLimits allow; `field` names the bound (max_bytes, max_ratio)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class _CountingReader:
    """A binary file that counts the bytes read through it (the tar reader's compressed input)."""

    def __init__(self, handle) -> None:
        self.handle, self.count = handle, 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.count += len(data)
        return data


class _Budget:
    """Copies members out while holding the archive to its limits."""

    def __init__(self, limits: ExtractLimits, label: str) -> None:
        self.limits, self.label, self.total = limits, label, 0

    def copy(self, source, target: Path, name: str, compressed: Callable[[], int]) -> None:
        """compressed(): the compressed bytes this member has consumed so far (an upper bound will do)."""
        limits, written = self.limits, 0
        with open(target, "wb") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                self.total += len(chunk)
                if self.total > limits.max_bytes:
                    raise ExtractLimitExceeded(
                        f"{self.label}: extracting {name!r} passed the cap of {limits.max_bytes:,} bytes for the whole "
                        "archive, well above the real archive's contents: it is not the expected file (or a "
                        "decompression bomb). Nothing was kept; delete it (and its copy in the mirror folder) and "
                        "get a clean copy.", "max_bytes")
                if written >= RATIO_FLOOR and written > limits.max_ratio * max(compressed(), 1):
                    raise ExtractLimitExceeded(
                        f"{self.label}: member {name!r} expands more than {limits.max_ratio:g} times (over "
                        f"{written:,} bytes from at most {compressed():,} compressed), far beyond real data of this "
                        "kind: a decompression bomb or not the expected file. Nothing was kept; delete it (and its "
                        "copy in the mirror folder) and get a clean copy.", "max_ratio")
                out.write(chunk)


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


def _extract_tar(archive: Path, into: Path, label: str, skip: Sequence[str], budget: _Budget) -> None:
    # stream mode: one sequential pass over the compressed file, counted to judge each member's ratio
    with open(archive, "rb") as handle:
        reader = _CountingReader(handle)
        with tarfile.open(fileobj=reader, mode="r|*") as tar:
            for member in tar:
                _extract_tar_member(tar, member, reader, into, label, skip, budget)


def _extract_tar_member(tar, member: tarfile.TarInfo, reader: _CountingReader, into: Path, label: str,
                        skip: Sequence[str], budget: _Budget) -> None:
    path = member_path(member.name, label)
    if member.issym() or member.islnk():
        kind = "symbolic link" if member.issym() else "hard link"
        raise DataError(f"{label}: refusing archive entry {member.name!r}: a {kind} "
                        f"(to {member.linkname!r}). The archive is unsafe; delete it and get a clean copy.")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{label}: refusing archive entry {member.name!r}: a device, fifo or other "
                        "special file. The archive is unsafe; delete it and get a clean copy.")
    if path is None or _skipped(path, skip):
        return
    target = into / path
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    start = reader.count
    with tar.extractfile(member) as source:
        budget.copy(source, target, member.name, lambda: reader.count - start)


def _extract_zip(archive: Path, into: Path, label: str, skip: Sequence[str], budget: _Budget) -> None:
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
            with zf.open(info) as source:  # zipfile checks each CRC and reads at most compress_size bytes
                budget.copy(source, target, info.filename, lambda: info.compress_size)


def extract(
    archive: Path,
    dest: Path,
    *,
    label: str | None = None,
    limits: ExtractLimits,
    skip: Sequence[str] = (),
    check: Callable[[Path], None] | None = None,
) -> list[str]:
    """Extract `archive` into `dest`; return the top-level names placed there.

    label: the name used in messages and to pick the archive type (default: the archive's name; the
    download stage extracts from a temporary file). limits: what it may write (ExtractLimitExceeded
    past them). skip: entry path prefixes not extracted. check(folder): called on the complete
    temporary extraction before anything is moved into place.
    """
    label = label or archive.name
    kind = archive_kind(label)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{Path(label).name}.", suffix=".extract", dir=dest))
    try:
        try:
            (_extract_zip if kind == "zip" else _extract_tar)(archive, tmp, label, skip, _Budget(limits, label))
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
