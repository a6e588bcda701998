"""download stage: a dataset's raw files into data/raw/<ds>/, verified, written atomically.

Where a file comes from, in order: the mirror folders ($SEQBENCH_MIRROR, several joined by
os.pathsep, then params `data.mirrors`; the first folder holding the canonical file name wins), else
its canonical URL (retried with exponential back-off).

What it is checked against: a mirror folder with a SHA256SUMS vouches for its own files (it may hold
a rebuilt archive or a generated Jena-like file); otherwise the canonical checksum pinned in the
dataset module applies (plus the pinned size/md5 and, for Jena, the extracted CSV's size and md5);
a file with no known checksum has its sha256 recorded, with a note. Either way an archive's
extraction is bounded by its dataset's ExtractLimits (params `data.extract_limits` overrides them).

Writes `<file>`, `<file>.sha256` (sha256sum format), the extracted archive contents, and
`status.json` = {"dataset", "available", "reason", "files": {name: {"sha256", "source"[, "extracted"]}}}.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from seqbench import archives
from seqbench import datasets as registry
from seqbench.datasets import RawFile
from seqbench.datasets.mirror import SUMS_NAME, read_sums
from seqbench.errors import DataError, DatasetUnavailable
from seqbench.io import atomic_path, read_json, sha256_file, write_json, write_text

MIRROR_ENV = "SEQBENCH_MIRROR"
STATUS_NAME = "status.json"
BACKOFF_S = 1.0  # wait before the 2nd attempt; doubles for each further attempt
_CHUNK = 1 << 20
_console = Console(stderr=True, highlight=False)


class DownloadFailed(Exception):
    """Every attempt at a URL failed; `str()` is the last error."""


# --- where files come from ---------------------------------------------------------------------------
def mirror_folders(configured: Sequence[str], root: Path, env: str | None = None) -> list[Path]:
    """$SEQBENCH_MIRROR folders first, then params data.mirrors; relative paths resolve against root."""
    env = os.environ.get(MIRROR_ENV, "") if env is None else env
    entries = [part for part in env.split(os.pathsep) if part.strip()] + list(configured)
    folders = [Path(entry).expanduser() for entry in entries]
    return [folder if folder.is_absolute() else root / folder for folder in folders]


def find_in_mirrors(name: str, folders: Sequence[Path]) -> Path | None:
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    return None


# --- fetching ----------------------------------------------------------------------------------------
def fetch_url(url: str, dest: Path, *, retries: int, timeout_s: float, label: str) -> None:
    """Stream `url` into `dest` (overwritten) with a progress bar; `retries` attempts in all."""
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            _stream(url, dest, timeout_s, label)
            return
        except urllib.error.HTTPError as error:
            last = error
            if 400 <= error.code < 500 and error.code not in (408, 429):
                break  # the URL itself is wrong: retrying cannot help
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            last = error
        if attempt < retries:
            wait = BACKOFF_S * 2 ** (attempt - 1)
            _console.print(f"[yellow]{escape(label)}: attempt {attempt}/{retries} failed ({escape(_describe(last))}); "
                           f"retrying in {wait:g} s[/yellow]")
            time.sleep(wait)
    raise DownloadFailed(_describe(last))


def _describe(error: Exception | None) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"{error.reason}"
    return f"{type(error).__name__}: {error}" if error else "unknown error"


def _stream(url: str, dest: Path, timeout_s: float, label: str) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "seqbench (python urllib)"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response, open(dest, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn())
        received = 0
        with Progress(*columns, console=_console, transient=False) as progress:
            task = progress.add_task(escape(label), total=total)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                progress.update(task, advance=len(chunk))
    if total is not None and received != total:
        raise OSError(f"connection closed after {received:,} of {total:,} bytes")


def _hashes(path: Path) -> tuple[str, str, int]:
    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), md5.hexdigest(), size


def _verify(path: Path, raw: RawFile, source: str, vouched: str | None) -> str:
    """Check the fetched copy; return its sha256. vouched: the digest from the mirror's SHA256SUMS line,
    None to hold the copy to the canonical file's pinned sha256/size/md5 (those known)."""
    sha, md5, size = _hashes(path)
    where = f"{raw.name} (from {source})"
    if vouched is not None:
        if sha != vouched:
            raise DataError(f"{where}: sha256 mismatch: the mirror's {SUMS_NAME} expects {vouched}, the file has "
                            f"{sha}. The mirror copy is damaged or {SUMS_NAME} is stale: replace the file or fix its "
                            f"line in {Path(source).parent / SUMS_NAME}, then re-run.")
        return sha
    fix = ("delete it from the mirror folder (or add a SHA256SUMS line vouching for it) and re-run"
           if not source.startswith(("http://", "https://")) else "re-run to download it again")
    if raw.size is not None and size != raw.size:
        raise DataError(f"{where}: expected {raw.size:,} bytes (the canonical file), got {size:,}. "
                        f"The copy is truncated or not the canonical file: {fix}.")
    if raw.sha256 is not None and sha != raw.sha256:
        raise DataError(f"{where}: sha256 mismatch: expected {raw.sha256} (the canonical file), got {sha}. "
                        f"The copy is corrupt or not the canonical file: {fix}.")
    if raw.md5 is not None and md5 != raw.md5:
        raise DataError(f"{where}: md5 mismatch: expected {raw.md5} (the canonical file), got {md5}: {fix}.")
    if raw.sha256 is None:
        _console.print(escape(f"note: {raw.name} has no published sha256; recorded {sha} (from {source})"))
    return sha


def _sha_line(path: Path) -> str | None:
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        return None
    return sidecar.read_text(encoding="utf-8").split(" ")[0].strip() or None


def _already_there(raw: RawFile, raw_dir: Path, previous: dict) -> dict | None:
    """The previous status entry if the file is present, matches its .sha256 and is fully extracted."""
    final = raw_dir / raw.name
    entry = previous.get(raw.name)
    if not final.is_file() or entry is None:
        return None
    recorded = _sha_line(final)
    if recorded is None or recorded != entry.get("sha256") or sha256_file(final) != recorded:
        return None
    extracted = entry.get("extracted")
    if raw.archive and not (extracted and all((raw_dir / name).exists() for name in extracted)):
        return None
    return entry


def fetch_file(
    raw: RawFile,
    raw_dir: Path,
    folders: Sequence[Path],
    *,
    retries: int = 3,
    timeout_s: float = 60.0,
    previous: dict | None = None,
    extract_skip: Sequence[str] = (),
    check_extracted: Callable[[Path], None] | None = None,
) -> dict:
    """Make `raw_dir/raw.name` a verified copy; return its status entry {"sha256", "source"[, "extracted"]}.

    Raises DataError on a checksum/size mismatch or a bad archive (nothing left under the final name),
    DatasetUnavailable when no mirror holds the file and the URL fails.
    """
    done = _already_there(raw, raw_dir, previous or {})
    if done is not None:
        return done
    final = raw_dir / raw.name
    sidecar = final.with_name(final.name + ".sha256")
    final.unlink(missing_ok=True)  # an unverifiable leftover must not survive a failed fetch
    sidecar.unlink(missing_ok=True)
    for stale in raw_dir.glob(f".{raw.name}.*"):  # temp files/folders of a killed earlier run
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    hit = find_in_mirrors(raw.name, folders)
    with atomic_path(final) as tmp:
        if hit is not None:
            source = str(hit)
            sums = read_sums(hit.parent)
            vouched = sums.get(raw.name) if sums else None
            shutil.copyfile(hit, tmp)
        else:
            source, vouched = raw.url, None
            try:
                fetch_url(raw.url, tmp, retries=retries, timeout_s=timeout_s, label=raw.name)
            except DownloadFailed as error:
                searched = ", ".join(str(f) for f in folders) or "none configured"
                raise DatasetUnavailable(
                    f"{raw.name} is in no mirror folder (searched: {searched}) and could not be downloaded from "
                    f"{raw.url}: {error}. Put {raw.name} into a folder and set {MIRROR_ENV}=<folder> "
                    f"(or list it under data.mirrors in params.yaml)."
                ) from None
        entry = {"sha256": _verify(tmp, raw, source, vouched), "source": source}
        if raw.archive:
            entry["extracted"] = archives.extract(
                tmp, raw_dir, label=raw.name, limits=raw.limits, skip=extract_skip,
                check=check_extracted if vouched is None else None,  # a mirror may hold a rebuilt copy
            )
    write_text(sidecar, f"{entry['sha256']}  {raw.name}\n")
    return entry


# --- the stage ---------------------------------------------------------------------------------------
def read_status(raw_dir: Path) -> dict | None:
    path = raw_dir / STATUS_NAME
    return read_json(path) if path.is_file() else None


def download_dataset(
    name: str,
    files: Sequence[RawFile],
    raw_dir: Path,
    folders: Sequence[Path],
    *,
    retries: int = 3,
    timeout_s: float = 60.0,
    extract_skip: Sequence[str] = (),
    check_extracted: Callable[[Path], None] | None = None,
) -> dict:
    """Fetch every file of a dataset and write status.json (available); errors propagate."""
    previous = (read_status(raw_dir) or {}).get("files", {})
    entries = {
        raw.name: fetch_file(raw, raw_dir, folders, retries=retries, timeout_s=timeout_s, previous=previous,
                             extract_skip=extract_skip, check_extracted=check_extracted)
        for raw in files
    }
    status = {"dataset": name, "available": True, "reason": None, "files": entries}
    write_json(raw_dir / STATUS_NAME, status)
    return status


def with_limits(files: Sequence[RawFile], overrides) -> list[RawFile]:
    """The dataset's files with params `data.extract_limits.<dataset>` applied to its archives."""
    if overrides is None:
        return list(files)
    changes = overrides.model_dump(exclude_none=True)
    return [replace(raw, limits=replace(raw.limits, **changes)) if raw.archive else raw for raw in files]


def run(params, layout, dataset: str) -> dict:
    info = registry.get(dataset)
    raw_dir = layout.raw(dataset)
    folders = mirror_folders(params.data.mirrors, layout.root)
    try:
        return download_dataset(
            dataset,
            with_limits(info.raw_files(), params.data.extract_limits.get(dataset)),
            raw_dir,
            folders,
            retries=params.data.retries,
            timeout_s=params.data.timeout_s,
            extract_skip=info.extract_skip,
            check_extracted=info.check_extracted,
        )
    except archives.ExtractLimitExceeded as error:
        raise DataError(f"{error} If the archive is genuine, raise data.extract_limits.{dataset}.{error.field} in "
                        "params.yaml.") from None
    except DatasetUnavailable as error:
        if params.data.on_missing == "fail":
            raise
        status = {"dataset": dataset, "available": False, "reason": str(error), "files": {}}
        write_json(raw_dir / STATUS_NAME, status)
        _console.print(f"[yellow]warning: dataset {dataset} is unavailable and will be skipped "
                       f"(data.on_missing: skip): {escape(str(error))}[/yellow]")
        return status
