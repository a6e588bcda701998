"""Tiny Shakespeare (Karpathy's char-rnn corpus): next-character prediction."""

from __future__ import annotations

from pathlib import Path

from seqbench.datasets import RawFile
from seqbench.errors import DataError

TEXT_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TEXT_CHARS = 1_115_394


def raw_files(name: str) -> list[RawFile]:
    return [
        RawFile(
            name="tinyshakespeare.txt",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256=TEXT_SHA256,
            size=TEXT_CHARS,
        )
    ]


# --- standardize (data-raw) ----------------------------------------------------------------------------
def schema(name: str, settings=None) -> dict:
    import polars as pl

    return {"text": pl.String}


def standardize(name: str, raw_dir: Path, settings=None):
    """The whole corpus as one row (column `text`), unchanged."""
    import polars as pl

    path = Path(raw_dir) / raw_files(name)[0].name
    if not path.is_file():
        raise DataError(f"{path}: file not found; re-run the download stage.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error}); delete it and re-run the download stage.") from None
    if not text:
        raise DataError(f"{path}: the file is empty; delete it and re-run the download stage.")
    return pl.DataFrame({"text": [text]}, schema=schema(name))
