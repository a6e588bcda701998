"""features stage (splits -> data/features/<ds>/) and the loaders every later stage uses.

Budget-free: only the protocol decides what is written; the train stage applies a preset's budget.
  forecast  series.npy (N, C) float32 = train|val|test rows in time order (the dataset's `series`), scaled
            with statistics of the train rows ONLY unless the dataset fixes its `scaling` (original =
            series * scale + mean); timestamps.npy (N,) datetime64[ns];
            windows are never materialized: a window is a start row (seqbench.windows)
  text      vocab.json, bigram_vocab.json, idf.npy, labels_<split>.npy int8,
            sequences_<split>.npy (n, L) int32, bow_unigram_<split>.npz (multi-hot CSR float32) and
            bigram_counts_<split>.npz (CSR float32 counts; bigram multi-hot and TF-IDF derive from it)
  chars     vocab.json, ids.npy (N,) int32: the whole (lowercased) corpus encoded
meta.json is written last (its presence marks complete features) and always holds "status" and "family".
Nobody else parses these files: use `load_features` / `unavailable_reason`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from seqbench import datasets
from seqbench import text as tx
from seqbench.errors import DataError, DatasetUnavailable
from seqbench.io import atomic_path, read_json, sha256_file, write_json
from seqbench.paths import Layout
from seqbench.datasets.splitting import SPLITS
from seqbench.tasks import CharTask, ForecastTask, TextTask, task_from_dict, to_dict
from seqbench.windows import window_starts

META = "meta.json"
BOW_KINDS = ("bow_unigram", "bow_bigram", "bow_tfidf")


# --- files -----------------------------------------------------------------------------------------
def _save(directory: Path, name: str, value) -> None:
    with atomic_path(directory / name) as tmp, open(tmp, "wb") as handle:
        if sp.issparse(value):
            sp.save_npz(handle, value, compressed=False)
        elif isinstance(value, np.ndarray):
            np.save(handle, value, allow_pickle=False)
        else:
            handle.write(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def _reset(directory: Path) -> None:
    """Remove meta.json first (the directory then reads as incomplete), then every old feature file."""
    (directory / META).unlink(missing_ok=True)
    for pattern in ("*.npy", "*.npz", "*.json"):
        for path in directory.glob(pattern):
            path.unlink()


def _data_hash(directory: Path, meta: dict) -> str:
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode())
    for name in meta["files"]:
        digest.update(f"{name}:{sha256_file(directory / name)}\n".encode())
    return digest.hexdigest()


# --- forecast --------------------------------------------------------------------------------------
def fit_scaler(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std (ddof=0) of the train rows (C,) float64; a constant column gets scale 1."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    # round-off leaves a constant column a tiny nonzero std; dividing by it would blow values up
    constant = std <= 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))
    return mean, np.where(constant, 1.0, std)


def build_forecast(name: str, tables: dict[str, pl.DataFrame], settings, out: Path, source: str) -> dict:
    dataset = datasets.get(name)
    table = pl.concat([tables[s] for s in SPLITS], how="vertical")
    edges = np.cumsum([0, *(tables[s].height for s in SPLITS)]).tolist()
    splits = {s: (edges[i], edges[i + 1]) for i, s in enumerate(SPLITS)}
    columns = dataset.series_columns(settings)
    frame = dataset.series(table, settings, source)
    values = frame.select(columns).to_numpy()  # (N, C) float64
    bad = [c for c, ok in zip(columns, np.isfinite(values).all(axis=0)) if not ok]
    if bad:
        raise DataError(f"{source}: column(s) {bad} hold missing or non-finite values, which standardize refuses "
                        f"where they enter: rerun `python -m seqbench standardize --dataset {name}` (it names the "
                        "raw file, line and value)")
    if tables["train"].height == 0:
        raise DataError(f"{source}/train.parquet: the train split is empty; check datasets.{name} in params.yaml")
    fixed = dataset.scaling(columns, settings)
    mean, scale = fixed if fixed is not None else fit_scaler(values[slice(*splits["train"])])
    series = np.ascontiguousarray(((values - mean) / scale).astype(np.float32))  # (N, C)
    timestamps = table["timestamp"].dt.replace_time_zone(None).to_numpy().astype("datetime64[ns]")
    del values, frame

    _save(out, "series.npy", series)
    _save(out, "timestamps.npy", timestamps)
    tasks = dataset.tasks(settings)
    n = len(series)
    return {
        "columns": list(columns),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "metric_units": dataset.metric_units,
        "n_rows": n,
        "splits": {s: list(r) for s, r in splits.items()},
        "tasks": [{**to_dict(t), "windows": {s: len(window_starts(t, splits[s], n)) for s in SPLITS}} for t in tasks],
        "files": ["series.npy", "timestamps.npy"],
    }


# --- text ------------------------------------------------------------------------------------------
def build_text(name: str, tables: dict[str, pl.DataFrame], settings, out: Path, source: str) -> dict:
    train = tx.tokenize(tables["train"]["text"])
    vocab = tx.fit_vocabulary(train, settings.max_tokens)
    files, counts, oov = ["vocab.json", "bigram_vocab.json", "idf.npy"], {}, {}
    _save(out, "vocab.json", vocab.unigram)
    _save(out, "bigram_vocab.json", vocab.bigram)
    idf = None
    for split in SPLITS:
        tokens = train if split == "train" else tx.tokenize(tables[split]["text"])
        train = None  # the vocabulary is fitted: the train tokens go once encoded
        labels = tables[split]["label"].cast(pl.Int8).to_numpy()
        sequences = tx.encode_sequences(tokens, vocab, settings.sequence_length)
        unigram = tx.unigram_multi_hot(tokens, vocab)
        bigram = tx.bigram_counts(tokens, vocab)
        if split == "train":
            idf = tx.idf_weights(bigram)
            _save(out, "idf.npy", idf)
        names = [f"labels_{split}.npy", f"sequences_{split}.npy", f"bow_unigram_{split}.npz",
                 f"bigram_counts_{split}.npz"]
        for file_name, value in zip(names, (labels, sequences, unigram, bigram)):
            _save(out, file_name, value)
        files += names
        counts[split] = tokens.n_docs
        oov[split] = round(tx.oov_rate(tokens, vocab), 5)
        del tokens, sequences, unigram, bigram
    task = TextTask(datasets.TEXT_TASK, vocab_size=len(vocab.unigram), sequence_length=settings.sequence_length,
                    bigram_vocab_size=len(vocab.bigram))
    return {"task": to_dict(task), "counts": counts, "oov_token_rate": oov, "files": files}


# --- chars -----------------------------------------------------------------------------------------
def build_chars(name: str, tables: dict[str, pl.DataFrame], settings, out: Path, source: str) -> dict:
    parts = {s: "".join(tables[s]["text"].fill_null("").to_list()) for s in SPLITS}
    if settings.lowercase:
        parts = {s: t.lower() for s, t in parts.items()}
    vocab = tx.char_vocabulary(parts["train"])
    ids = tx.encode_chars("".join(parts[s] for s in SPLITS), vocab).astype(np.int32)
    edges = np.cumsum([0, *(len(parts[s]) for s in SPLITS)]).tolist()
    _save(out, "vocab.json", vocab)
    _save(out, "ids.npy", ids)
    task = CharTask(datasets.CHAR_TASK, vocab_size=len(vocab), window=settings.window)
    return {"task": to_dict(task), "lowercase": settings.lowercase,
            "splits": {s: [edges[i], edges[i + 1]] for i, s in enumerate(SPLITS)}, "files": ["vocab.json", "ids.npy"]}


BUILDERS = {"forecast": build_forecast, "text": build_text, "chars": build_chars}


# --- stage -----------------------------------------------------------------------------------------
def read_split_summary(split_dir: Path, name: str) -> dict:
    path = split_dir / "split.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; run `python -m seqbench split --dataset {name}` first")
    return read_json(path)


def run(params, layout: Layout, dataset: str) -> dict:
    family = datasets.get(dataset).family
    split_dir, out = layout.split(dataset), layout.features(dataset)
    summary = read_split_summary(split_dir, dataset)
    out.mkdir(parents=True, exist_ok=True)
    _reset(out)
    meta = {"dataset": dataset, "family": family}
    if summary.get("status") != "ok":
        meta = {**meta, "status": "unavailable", "reason": summary.get("reason") or "split stage marked it unavailable"}
        write_json(out / META, meta)
        return meta
    tables = {}
    for split in SPLITS:
        path = split_dir / f"{split}.parquet"
        if not path.is_file():
            raise DataError(f"{path}: not found; rerun `python -m seqbench split --dataset {dataset}`")
        tables[split] = pl.read_parquet(path)
    meta = {**meta, "status": "ok", **BUILDERS[family](dataset, tables, params.dataset(dataset), out, str(split_dir))}
    meta["data_hash"] = _data_hash(out, meta)
    write_json(out / META, meta)
    return meta


# --- loaders ---------------------------------------------------------------------------------------
def _read_meta(features_dir: Path) -> dict:
    path = Path(features_dir) / META
    if not path.is_file():
        raise DataError(f"{path}: not found; run `python -m seqbench features --dataset {Path(features_dir).name}`")
    return read_json(path)


def unavailable_reason(features_dir: Path) -> str | None:
    meta = _read_meta(features_dir)
    if meta["status"] == "ok":
        return None
    return meta.get("reason") or f"status {meta['status']!r}"


def _load(features_dir: Path, name: str):
    path = Path(features_dir) / name
    if not path.is_file():
        raise DataError(f"{path}: feature file missing; rerun `python -m seqbench features --dataset "
                        f"{Path(features_dir).name}`")
    if name.endswith(".npz"):
        return sp.load_npz(path).tocsr()
    if name.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    return read_json(path)


@dataclass(frozen=True, eq=False)
class ForecastFeatures:
    series: np.ndarray  # (N, C) float32, scaled: original = series * scale + mean
    timestamps: np.ndarray  # (N,) datetime64[ns]
    columns: tuple[str, ...]
    mean: np.ndarray  # (C,) float64
    scale: np.ndarray  # (C,) float64
    metric_units: str
    splits: dict[str, tuple[int, int]]
    tasks: dict[str, ForecastTask]
    data_hash: str

    def windows(self, task: str, split: str) -> range:
        return window_starts(self.tasks[task], self.splits[split], len(self.series))

    def column_index(self, names) -> list[int]:
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise KeyError(f"columns {missing} not in the series; it has {list(self.columns)}")
        return [self.columns.index(n) for n in names]


@dataclass(frozen=True, eq=False)
class TextFeatures:
    task: TextTask
    vocab: list[str]  # id -> token; 0 "" padding, 1 "[UNK]"
    labels: dict[str, np.ndarray]  # split -> (n,) int64 in {0, 1}
    sequences: dict[str, np.ndarray]  # split -> (n, L) int64
    data_hash: str
    directory: Path

    def bow(self, kind: str, split: str) -> sp.csr_matrix:
        """(n, V) float32 CSR: V = len(vocab) for bow_unigram, task.bigram_vocab_size otherwise."""
        if kind not in BOW_KINDS:
            raise ValueError(f"unknown bag-of-words kind {kind!r}; choose one of {list(BOW_KINDS)}")
        if kind == "bow_unigram":
            return _load(self.directory, f"bow_unigram_{split}.npz")
        counts = _load(self.directory, f"bigram_counts_{split}.npz")
        return tx.multi_hot(counts) if kind == "bow_bigram" else tx.tf_idf(counts, _load(self.directory, "idf.npy"))


@dataclass(frozen=True, eq=False)
class CharFeatures:
    task: CharTask
    vocab: list[str]  # id -> char; 0 = out-of-vocabulary ""
    ids: np.ndarray  # (N,) int64
    splits: dict[str, tuple[int, int]]  # char offsets [a, b)
    data_hash: str
    lowercase: bool = True

    def windows(self, split: str, stride: int = 1) -> range:
        """Starts s: inputs ids[s:s+W], targets ids[s+1:s+W+1], all inside the split."""
        a, b = self.splits[split]
        return range(a, max(a, b - self.task.window), stride)

    def encode(self, text: str) -> np.ndarray:
        return tx.encode_chars(text.lower() if self.lowercase else text, self.vocab)

    def decode(self, ids) -> str:
        return tx.decode_chars(ids, self.vocab)


def load_features(features_dir: Path) -> ForecastFeatures | TextFeatures | CharFeatures:
    features_dir = Path(features_dir)
    meta = _read_meta(features_dir)
    if meta["status"] != "ok":
        raise DatasetUnavailable(f"{features_dir}: dataset {meta.get('dataset')!r} is unavailable: "
                                 f"{meta.get('reason')}")
    if meta["family"] == "forecast":
        return ForecastFeatures(
            series=_load(features_dir, "series.npy"),
            timestamps=_load(features_dir, "timestamps.npy"),
            columns=tuple(meta["columns"]),
            mean=np.asarray(meta["mean"], dtype=np.float64),
            scale=np.asarray(meta["scale"], dtype=np.float64),
            metric_units=meta["metric_units"],
            splits={s: tuple(r) for s, r in meta["splits"].items()},
            tasks={t["name"]: task_from_dict(t) for t in meta["tasks"]},
            data_hash=meta["data_hash"],
        )
    if meta["family"] == "text":
        return TextFeatures(
            task=task_from_dict(meta["task"]),
            vocab=_load(features_dir, "vocab.json"),
            labels={s: _load(features_dir, f"labels_{s}.npy").astype(np.int64) for s in SPLITS},
            sequences={s: _load(features_dir, f"sequences_{s}.npy").astype(np.int64) for s in SPLITS},
            data_hash=meta["data_hash"],
            directory=features_dir,
        )
    if meta["family"] == "chars":
        return CharFeatures(
            task=task_from_dict(meta["task"]),
            vocab=_load(features_dir, "vocab.json"),
            ids=_load(features_dir, "ids.npy").astype(np.int64),
            splits={s: tuple(r) for s, r in meta["splits"].items()},
            data_hash=meta["data_hash"],
            lowercase=meta["lowercase"],
        )
    raise DataError(f"{features_dir / META}: unknown family {meta['family']!r}; rerun the features stage")
