"""Tiny Shakespeare (Karpathy's char-rnn corpus): next-character prediction.

Split rule: characters [0, int(f0 n)), [int(f0 n), int((f0 + f1) n)), the rest; one row per split.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PositiveInt

from seqbench.datasets.base import CharDataset, DatasetSettings, DatasetTraining, Fractions, RawFile
from seqbench.errors import DataError

FILE_NAME = "tinyshakespeare.txt"
TEXT_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TEXT_CHARS = 1_115_394


class ShakespeareSettings(DatasetSettings):
    split: Fractions
    window: int = Field(ge=2)
    lowercase: bool
    sample_prompt: str = Field(min_length=1)
    sample_length: PositiveInt
    training: DatasetTraining


class Shakespeare(CharDataset):
    settings = ShakespeareSettings
    primary_metric = "accuracy"  # Geron's metric (his 0.5513 is validation accuracy)
    headline_split = "val"

    def raw_files(self) -> list[RawFile]:
        return [
            RawFile(
                name=FILE_NAME,
                url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                sha256=TEXT_SHA256,
                size=TEXT_CHARS,
            )
        ]

    def schema(self, settings=None) -> dict:
        import polars as pl

        return {"text": pl.String}

    def standardize(self, raw_dir: Path, settings=None):
        """The whole corpus as one row (column `text`), unchanged."""
        import polars as pl

        path = Path(raw_dir) / FILE_NAME
        if not path.is_file():
            raise DataError(f"{path}: file not found; re-run the download stage.")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text ({error}); delete it and re-run the download stage.") from None
        if not text:
            raise DataError(f"{path}: the file is empty; delete it and re-run the download stage.")
        return pl.DataFrame({"text": [text]}, schema=self.schema())

    def split(self, table, settings, source):
        import polars as pl

        from seqbench.datasets.splitting import Splits

        if table.height != 1:
            raise DataError(f"{source}: expected one row holding the whole corpus, found {table.height}; "
                            f"rerun `python -m seqbench standardize --dataset {self.name}`")
        fractions = settings.split
        corpus = table["text"][0] or ""
        n = len(corpus)
        a, b = int(fractions[0] * n), int((fractions[0] + fractions[1]) * n)
        offsets = {"train": [0, a], "val": [a, b], "test": [b, n]}
        parts = {name: pl.DataFrame({"text": [corpus[lo:hi]]}, schema=table.schema)
                 for name, (lo, hi) in offsets.items()}
        return Splits(**parts, protocol=f"character fractions {list(fractions)} in text order",
                      boundaries={name: {"chars": span} for name, span in offsets.items()}, count_unit="characters")


REGISTER = (Shakespeare("shakespeare"),)
