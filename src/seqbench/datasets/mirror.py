"""Mirror folders: a folder of raw files under their canonical names, optionally with a SHA256SUMS
(sha256sum format) that vouches for its own copies (a rebuilt archive, a generated file)."""

from __future__ import annotations

from pathlib import Path

from seqbench.errors import DataError

SUMS_NAME = "SHA256SUMS"


def read_sums(folder: Path) -> dict[str, str] | None:
    """{file name: sha256} from the folder's SHA256SUMS (sha256sum format), None if it has none."""
    sums_path = Path(folder) / SUMS_NAME
    if not sums_path.is_file():
        return None
    sums = {}
    for number, line in enumerate(sums_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")  # "*name" marks binary mode in sha256sum output
        if len(digest) != 64 or not name:
            raise DataError(f"{sums_path}, line {number}: not in sha256sum format ('<sha256>  <file name>'): "
                            f"{line!r}. Fix or regenerate it with `sha256sum FILES > SHA256SUMS`.")
        sums[name] = digest.lower()
    return sums
