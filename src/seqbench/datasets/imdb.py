"""IMDB Large Movie Review dataset (Maas et al., ACL 2011), Chollet's protocol (ch. 11).

Split rule: the official test set is the test split; from the official train set, validation gets
int(val_fraction * n) reviews of EACH label: the label's reviews sorted by id, one numpy Generator
seeded with `split_seed` permutes label 0 then label 1, and the first int(val_fraction * n) of each
permutation go to validation (so the draw never depends on file-system order).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, NonNegativeInt, PositiveInt

from seqbench.archives import ExtractLimits
from seqbench.datasets.base import DatasetSettings, DatasetTraining, RawFile, TextDataset
from seqbench.errors import DataError

# The Stanford archive's published checksum; a mirror may hold a rebuilt archive vouched for by its
# own SHA256SUMS (e.g. the shared offline mirror, whose archive lacks the *.feat files).
ARCHIVE_NAME = "aclImdb_v1.tar.gz"
ARCHIVE_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
ARCHIVE_BYTES = 84_125_825
ARCHIVE_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
# Without train/unsup the rebuilt archive extracts to 72.1 MB; the published one adds three *.feat
# bag-of-words files of about 85 MB in all: 320 MiB is twice that. Reviews and vocabulary deflate 2-4
# times, the urls_*.txt lists (one IMDB address per line, ids counting up) up to 66 times; a run of
# one repeated byte deflates about 1000 times. 200 lies between.
EXTRACT_LIMITS = ExtractLimits(max_bytes=320 << 20, max_ratio=200)

ROOT = "aclImdb"
SPLITS = ("train", "test")  # the official folders; validation is cut from train by the split stage
# label, and the ratings a review of that label has (the dataset's definition: negative <= 4, positive >= 7)
LABELS = {"neg": (0, range(1, 5)), "pos": (1, range(7, 11))}
EXTRACT_SKIP = ("aclImdb/train/unsup/",)  # 50,000 unlabelled reviews nobody reads: not extracted
_NAME = re.compile(r"(\d+)_(\d+)\.txt")
_BREAK = r"(?i)<br\s*/?>"  # <br />, <br/>, <br>


class ImdbSettings(DatasetSettings):
    val_fraction: float = Field(gt=0, lt=1)
    split_seed: NonNegativeInt
    max_tokens: int = Field(ge=10)
    sequence_length: PositiveInt
    training: DatasetTraining


def _read_reviews(folder: Path, ratings_allowed: range) -> tuple[list[int], list[int], list[str]]:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; the IMDB archive is incomplete. Delete "
                        f"{folder.parents[2]} and re-run the download stage.")
    ids, ratings, texts, seen = [], [], [], {}
    for path in folder.iterdir():
        if path.suffix != ".txt":
            continue
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise DataError(f"{path}: review file names must look like <id>_<rating>.txt; remove or rename it.")
        review, rating = int(match[1]), int(match[2])
        if rating not in ratings_allowed:
            raise DataError(f"{path}: rating {rating} (from the file name) is outside "
                            f"{ratings_allowed.start}..{ratings_allowed.stop - 1}, the ratings of {folder.name} "
                            "reviews; the archive is damaged or not the published one: get a clean copy.")
        if review in seen:
            raise DataError(f"{path} and {seen[review].name}: two reviews with id {review} in {folder}; "
                            "which one is right cannot be told: get a clean copy.")
        seen[review] = path
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text ({error}); replace it with a clean copy.") from None
        ids.append(review)
        ratings.append(rating)
    return ids, ratings, texts


class Imdb(TextDataset):
    settings = ImdbSettings
    primary_metric = "accuracy"
    extract_skip = EXTRACT_SKIP

    def raw_files(self) -> list[RawFile]:
        return [
            RawFile(
                name=ARCHIVE_NAME,
                url=f"http://ai.stanford.edu/~amaas/data/sentiment/{ARCHIVE_NAME}",
                sha256=ARCHIVE_SHA256,
                size=ARCHIVE_BYTES,
                md5=ARCHIVE_MD5,
                archive=True,
                limits=EXTRACT_LIMITS,
            )
        ]

    def schema(self, settings=None) -> dict:
        import polars as pl

        return {"split": pl.String, "label": pl.Int8, "rating": pl.Int8, "id": pl.Int32, "text": pl.String}

    def standardize(self, raw_dir: Path, settings=None):
        """aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt -> one row per review.

        label 1 = pos, 0 = neg; id and rating come from the file name (a rating outside the label's,
        or an id twice in one folder, is an error); HTML line breaks (`<br />`, `<br/>`, `<br>`) become
        a space; train/unsup is ignored. Sorted by split, label, id (so "test" rows first).
        """
        import polars as pl

        frames = []
        for split in SPLITS:
            for folder_name, (label, ratings_allowed) in LABELS.items():
                ids, ratings, texts = _read_reviews(Path(raw_dir) / ROOT / split / folder_name, ratings_allowed)
                frames.append(pl.DataFrame(
                    {"split": split, "label": label, "rating": ratings, "id": ids, "text": texts},
                    schema=self.schema(),
                ))
        return (
            pl.concat(frames)
            .with_columns(pl.col("text").str.replace_all(_BREAK, " "))
            .sort("split", "label", "id")
        )

    def split(self, table, settings, source):
        import numpy as np
        import polars as pl

        from seqbench.datasets.splitting import Splits

        val_fraction, seed = settings.val_fraction, settings.split_seed
        official = table.filter(pl.col("split") == "train").sort(["label", "id"])
        rng = np.random.default_rng(seed)
        in_val = np.zeros(official.height, dtype=bool)
        labels = official["label"].to_numpy()
        per_label = {}
        for label in (0, 1):
            rows = np.flatnonzero(labels == label)  # sorted by id
            n_val = int(val_fraction * len(rows))
            in_val[rows[rng.permutation(len(rows))[:n_val]]] = True
            per_label[str(label)] = n_val
        mask = pl.Series(in_val)
        return Splits(
            train=official.filter(~mask),
            val=official.filter(mask),
            test=table.filter(pl.col("split") == "test").sort(["label", "id"]),
            protocol=f"official test; {val_fraction:g} of each train label to validation (seed {seed})",
            boundaries={"val_fraction": val_fraction, "split_seed": seed, "val_per_label": per_label},
            count_unit="reviews",
        )


REGISTER = (Imdb("imdb"),)
