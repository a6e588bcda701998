"""features stage + loaders: train-only scaling, window protocols (ramps catch off-by-ones), naive
forecasts checked against independent computations on raw files, text and char encodings."""

from __future__ import annotations

import datetime as dt
import io
import os
import string
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from seqbench import features as feat
from seqbench import split as split_stage
from seqbench.errors import DataError, DatasetUnavailable
from seqbench.io import read_json
from seqbench.params import load_params, parse_params
from seqbench.paths import Layout
from seqbench.standardize import write_table
from seqbench.tasks import ForecastTask
from seqbench.windows import gather_every_step_targets, gather_inputs, gather_targets

ETT_COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
MIRROR = os.environ.get("SEQBENCH_MIRROR")
needs_mirror = pytest.mark.skipif(not MIRROR, reason="set SEQBENCH_MIRROR to the offline data mirror folder")


def hourly(values: dict, start=dt.datetime(2016, 7, 1), step="1h") -> pl.DataFrame:
    n = len(next(iter(values.values())))
    delta = {"1h": dt.timedelta(hours=1), "10m": dt.timedelta(minutes=10)}[step]
    stamps = pl.Series([start + i * delta for i in range(n)]).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return pl.DataFrame({"timestamp": stamps, **{c: np.asarray(v, dtype=np.float64) for c, v in values.items()}})


def build(project: Path, name: str, table: pl.DataFrame, params=None, reason: str | None = None):
    """standard table -> split -> features in the project; returns (layout, loaded features or None)."""
    layout = Layout(project)
    params = params or load_params(layout.params)
    write_table(layout.standard(name), table, unavailable=reason)
    split_stage.run(params, layout, name)
    feat.run(params, layout, name)
    if reason is not None:
        return layout, None
    return layout, feat.load_features(layout.features(name))


def original(features, rows: np.ndarray, column: str) -> np.ndarray:
    j = features.column_index([column])[0]
    return features.series[rows, j].astype(np.float64) * features.scale[j] + features.mean[j]


def ramp_rows(features, column: str, rows: np.ndarray) -> np.ndarray:
    """Back from scaled values to the ramp's row numbers (value = row number)."""
    return np.rint(original(features, rows, column)).astype(np.int64)


# --- scaling ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("columns", [[0, 1, 2], [2], [2, 0], [1, 0, 2]], ids=["all", "one", "two", "all-reordered"])
def test_batches_gathered_from_a_tensor_equal_numpy_indexing(columns):
    import torch

    series = np.arange(200 * 3, dtype=np.float32).reshape(200, 3)  # value = 3 x row + column
    task = ForecastTask("t", lookback=5, horizon=4, inputs=("a", "b", "c"), targets=("c",), sampling=3, delay=2)
    starts = np.array([0, 7, 150, 3])
    for gather in (gather_inputs, gather_targets, gather_every_step_targets):
        want = gather(series, starts, task, columns)
        got = gather(torch.as_tensor(series), torch.as_tensor(starts), task, columns)
        assert want.shape[-1] == len(columns)
        np.testing.assert_array_equal(got.numpy(), want)
    rows = starts[:, None] + 3 * np.arange(5)  # the inputs from their definition
    np.testing.assert_array_equal(gather_inputs(series, starts, task, columns), 3 * rows[..., None] + columns)


def test_scaler_uses_train_rows_only(project):
    rng = np.random.default_rng(0)
    values = {f"x{i}": rng.normal(5 * i, 1 + i, 3000) for i in range(3)}
    layout, f = build(project, "synthetic", hourly(values))
    train = np.column_stack([values[c] for c in ("x0", "x1", "x2")])[:2100]
    np.testing.assert_allclose(f.mean, train.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(f.scale, train.std(axis=0, ddof=0), rtol=1e-12)
    assert f.series.dtype == np.float32 and f.series.flags["C_CONTIGUOUS"] and f.series.shape == (3000, 3)
    np.testing.assert_allclose(f.series[:2100].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(original(f, np.arange(3000), "x1"), values["x1"], rtol=1e-6, atol=1e-5)
    assert f.timestamps.dtype == np.dtype("datetime64[ns]") and f.splits == {
        "train": (0, 2100), "val": (2100, 2550), "test": (2550, 3000)}
    assert f.metric_units == "original" and list(f.tasks) == ["next_step", "h12"]

    values["x0"][2999] = 1e6  # a test-split value
    values["x2"][2200] = -1e6  # a validation value
    _, changed = build(project, "synthetic", hourly(values))
    np.testing.assert_array_equal(changed.mean, f.mean)
    np.testing.assert_array_equal(changed.scale, f.scale)
    assert changed.series[2999, 0] != f.series[2999, 0]
    assert changed.data_hash != f.data_hash
    _, again = build(project, "synthetic", hourly(values))
    assert again.data_hash == changed.data_hash  # deterministic


def test_constant_column_gets_scale_one(project):
    values = {"x0": np.arange(3000.0), "x1": np.full(3000, 0.1), "x2": np.sin(np.arange(3000))}
    _, f = build(project, "synthetic", hourly(values))
    assert f.scale[1] == 1.0 and f.mean[1] == pytest.approx(0.1)
    assert np.isfinite(f.series).all()


# --- windows: ramps (value = row number) make an off-by-one fail ------------------------------------
def test_ett_inputs_look_back_across_the_boundary_targets_never_cross(project, params_dict):
    params_dict["datasets"]["etth1"].update(borders=[200, 260, 320], lookback=24, horizons=[12], extra_lookbacks=[])
    for preset in params_dict["presets"].values():  # the presets name the real protocol's tasks
        for name in ("etth1", "etth2"):
            preset["budgets"].get(name, {}).pop("tasks", None)
            preset["budgets"].get(name, {}).pop("models", None)
    params = parse_params(params_dict)
    ramp = {c: np.arange(350.0) for c in ETT_COLUMNS}
    _, f = build(project, "etth1", hourly(ramp), params)
    task = f.tasks["h12"]
    assert {s: len(f.windows("h12", s)) for s in ("train", "val", "test")} == {
        "train": 200 - 36 + 1, "val": 60 - 12 + 1, "test": 60 - 12 + 1}  # every target row of val/test used once
    for split in ("train", "val", "test"):
        a, b = f.splits[split]
        starts = np.array(f.windows("h12", split))
        x = gather_inputs(f.series, starts, task, f.column_index(["OT"]))[..., 0]  # (B, T)
        y = gather_targets(f.series, starts, task, f.column_index(["OT"]))[..., 0]  # (B, H)
        x_rows = np.rint(x * f.scale[6] + f.mean[6]).astype(int)
        y_rows = np.rint(y * f.scale[6] + f.mean[6]).astype(int)
        np.testing.assert_array_equal(x_rows, starts[:, None] + np.arange(24))
        np.testing.assert_array_equal(y_rows, x_rows[:, -1:] + 1 + np.arange(12))  # 1..H hours after the last input
        # targets cover the split (train: after the first look-back) and never leave it
        assert y_rows.min() == (a + 24 if split == "train" else a) and y_rows.max() == b - 1
        if split != "train":
            assert x_rows.min() == a - 24  # the first window's inputs come from the previous split
    assert f.metric_units == "scaled"


def keras_starts(n_rows: int, sequence_length: int, sampling: int, delay: int, start: int, end: int | None) -> range:
    """timeseries_dataset_from_array(raw[:-delay], targets=temp[delay:], start_index, end_index) starts,
    as Chollet calls it (delay = sampling * (sequence_length + 24 - 1))."""
    data_len = n_rows - delay
    end = data_len if end is None else end
    num = min(end - start - (sequence_length - 1) * sampling, data_len)
    return range(start, start + max(num, 0))


def test_jena_target_is_144_rows_after_the_last_input(project, params_dict):
    params_dict["datasets"]["jena"].update(lookback=10)
    params = parse_params(params_dict)
    from seqbench.datasets.jena import COLUMNS
    n = 3000
    _, f = build(project, "jena", hourly({c: np.arange(n, dtype=float) for c in COLUMNS}, step="10m"), params)
    task = f.tasks["temp_24h"]
    assert (task.sampling, task.delay, task.horizon) == (6, 144, 1)
    chollet_delay = 6 * (10 + 24 - 1)
    for split in ("train", "val"):
        a, b = f.splits[split]
        starts = np.array(f.windows("temp_24h", split))
        assert list(starts) == list(keras_starts(n, 10, 6, chollet_delay, a, b))
        x_rows = ramp_rows(f, "T (degC)", starts[:, None] + 6 * np.arange(10))
        y = gather_targets(f.series, starts, task, f.column_index(["T (degC)"]))[:, 0, 0]
        y_rows = np.rint(y * f.scale[1] + f.mean[1]).astype(int)
        np.testing.assert_array_equal(y_rows, x_rows[:, -1] + 144)
        assert x_rows.max() == b - 1  # inputs run to the split's end; the target may lie beyond it
    assert (f.splits["train"], f.splits["val"]) == ((0, 1500), (1500, 2250))


def test_jena_test_windows_match_keras(project, params_dict):
    params_dict["datasets"]["jena"].update(lookback=10)
    from seqbench.datasets.jena import COLUMNS
    n = 3000
    _, f = build(project, "jena", hourly({c: np.arange(n, dtype=float) for c in COLUMNS}, step="10m"),
                 parse_params(params_dict))
    a, _ = f.splits["test"]
    assert f.windows("temp_24h", "test") == keras_starts(n, 10, 6, 6 * 33, a, None)


def cta_table(first=dt.date(2015, 12, 1), last=dt.date(2019, 9, 30)) -> pl.DataFrame:
    days = pl.date_range(first, last, "1d", eager=True)
    n = len(days)
    day_type = ["W", "W", "W", "W", "W", "A", "U"]
    return pl.DataFrame({
        "timestamp": days.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "day_type": [day_type[d.weekday()] for d in days],
        "bus": np.arange(n, dtype=np.int64) * 1000 + 7,
        "rail": np.arange(n, dtype=np.int64) * 1000,
    })


def test_cta_targets_one_and_fourteen_days_after_windows_never_cross(project):
    table = cta_table()
    _, f = build(project, "cta", table)
    assert f.columns == ("bus", "rail", "next_day_type_A", "next_day_type_U", "next_day_type_W")
    np.testing.assert_array_equal(f.mean, 0)
    np.testing.assert_array_equal(f.scale, [1e6, 1e6, 1, 1, 1])
    n_train = 366 + 365 + 365
    assert f.splits["train"] == (0, n_train) and len(f.windows("next_day", "train")) == n_train - 56
    rail = f.column_index(["rail"])[0]
    days = f.timestamps.astype("datetime64[D]")
    for name, horizon in (("next_day", 1), ("multivariate", 1), ("14_day", 14)):
        task = f.tasks[name]
        for split in ("train", "val", "test"):
            a, b = f.splits[split]
            starts = np.array(f.windows(name, split))
            assert starts.min() == a and starts.max() + 56 + horizon == b  # all inside, none dropped
            last = starts + 55
            y = gather_targets(f.series, starts, task, [rail])[..., 0]  # (B, H)
            x = gather_inputs(f.series, starts, task, f.column_index(task.inputs))  # (B, 56, F)
            target_rows = last[:, None] + 1 + np.arange(horizon)
            np.testing.assert_array_equal(np.rint(y * 1e6), (target_rows + 31) * 1000.0)  # table starts 31 days early
            assert ((days[target_rows] - days[last][:, None])
                    == np.arange(1, horizon + 1)).all()
            assert x.shape == (len(starts), 56, len(task.inputs))
    # the day-type flags describe the following day, as in Geron's shift(-1); the last row has none
    flags = f.series[:, 2:]
    next_types = table.filter(pl.col("timestamp").dt.date() >= dt.date(2016, 1, 1))["day_type"].to_list()[1:]
    assert [("A", "U", "W")[k] for k in flags[:-1].argmax(axis=1)] == next_types
    assert flags[-1].sum() == 0 and (flags[:-1].sum(axis=1) == 1).all()


# --- naive forecasts against independent computations on the raw files -----------------------------
def pipeline(project: Path, name: str, mirror: str, monkeypatch):
    from seqbench import download, standardize

    monkeypatch.setenv("SEQBENCH_MIRROR", mirror)
    layout = Layout(project)
    params = load_params(layout.params)
    for stage in (download, standardize, split_stage, feat):
        stage.run(params, layout, name)
    return feat.load_features(layout.features(name))


def naive_by_stage(f, task_name: str, split: str) -> tuple[float, float]:
    """Repeat the last observed values over the horizon, through the stage's windows and scaler."""
    task = f.tasks[task_name]
    starts = np.array(f.windows(task_name, split))
    last = gather_inputs(f.series, starts, task, f.column_index(task.inputs))[:, -1:, list(task.target_positions)]
    y = gather_targets(f.series, starts, task, f.column_index(task.targets)).astype(np.float64)
    error = last.astype(np.float64) - y
    if f.metric_units == "original":
        error = error * f.scale[f.column_index(task.targets)]
    return float(np.mean(error**2)), float(np.mean(np.abs(error)))


@needs_mirror
def test_etth1_naive_forecast_matches_an_independent_loop(project, monkeypatch):
    f = pipeline(project, "etth1", MIRROR, monkeypatch)
    assert {s: len(f.windows("h96", s)) for s in ("train", "val", "test")} == {
        "train": 8449, "val": 2785, "test": 2785}

    # Independent: the Informer / Time-Series-Library recipe, written out with pandas/numpy only.
    raw = pd.read_csv(Path(MIRROR) / "ETTh1.csv")
    data = raw[list(ETT_COLUMNS)].to_numpy(dtype=np.float64)
    train = data[0:8640]
    scaled = (data - train.mean(axis=0)) / train.std(axis=0)  # numpy std: ddof=0, as sklearn's StandardScaler
    for split, (border1, border2) in {"val": (8640 - 96, 11520), "test": (11520 - 96, 14400)}.items():
        sq = ab = 0.0
        count = border2 - border1 - 96 - 96 + 1
        for i in range(count):
            x = scaled[border1 + i: border1 + i + 96]
            y = scaled[border1 + i + 96: border1 + i + 96 + 96]
            error = x[-1] - y  # the naive forecast repeats the last input row for all 96 steps
            sq += float((error**2).sum())
            ab += float(np.abs(error).sum())
        mse, mae = sq / (count * 96 * 7), ab / (count * 96 * 7)
        stage_mse, stage_mae = naive_by_stage(f, "h96", split)
        assert stage_mse == pytest.approx(mse, abs=1e-6)
        assert stage_mae == pytest.approx(mae, abs=1e-6)


def test_jena_naive_mae_matches_numpy_on_a_generated_file(project, tmp_path, monkeypatch):
    from seqbench.datasets.jena import CSV_NAME, write_jena_like

    mirror = tmp_path / "mirror"
    write_jena_like(mirror, rows=8000, seed=3)
    f = pipeline(project, "jena", str(mirror), monkeypatch)

    # Independent: the raw CSV, deduplicated by timestamp (first row kept), Chollet's split and delays.
    with zipfile.ZipFile(mirror / "jena_climate_2009_2016.csv.zip") as archive:
        raw = pd.read_csv(io.BytesIO(archive.read(CSV_NAME)))
    raw = raw.drop_duplicates(subset="Date Time", keep="first")
    raw = raw.assign(when=pd.to_datetime(raw["Date Time"], format="%d.%m.%Y %H:%M:%S")).sort_values("when")
    temperature = raw["T (degC)"].to_numpy()
    n = len(temperature)
    n_train, n_val = int(0.5 * n), int(0.25 * n)
    last_input, target = 6 * 119, 6 * 119 + 144  # rows after a window's start
    data_rows = n - target  # Chollet: timeseries_dataset_from_array(raw_data[:-delay], ...)
    for split, (a, b) in {"val": (n_train, n_train + n_val), "test": (n_train + n_val, None)}.items():
        end = data_rows if b is None else b  # end_index=None on the test split: the end of the data
        errors = [abs(temperature[s + last_input] - temperature[s + target]) for s in range(a, end - last_input)]
        _, stage_mae = naive_by_stage(f, "temp_24h", split)
        assert len(f.windows("temp_24h", split)) == len(errors)
        assert stage_mae == pytest.approx(float(np.mean(errors)), abs=1e-5)  # degC, through float32


# --- text ------------------------------------------------------------------------------------------
def imdb_table() -> pl.DataFrame:
    rows = []
    for label, word in ((0, "bad"), (1, "good")):
        for i in range(10):
            review = f"A {word} movie, really {word}! Scene {i % 3} with actor{i}. " * (1 + i % 2)
            rows.append(("train", label, 2 + 7 * label, i, review))
        rows.append(("test", label, 2 + 7 * label, 0, f"An unseenword {word} movie"))
    return pl.DataFrame(rows, schema={"split": pl.String, "label": pl.Int8, "rating": pl.Int8, "id": pl.Int32,
                                      "text": pl.String}, orient="row")


def test_text_features_fit_on_train_only(project, params_dict):
    params_dict["datasets"]["imdb"].update(max_tokens=10, sequence_length=8)
    layout, f = build(project, "imdb", imdb_table(), parse_params(params_dict))
    assert isinstance(f, feat.TextFeatures)
    assert f.vocab[:2] == ["", "[UNK]"] and "unseenword" not in f.vocab and "an" not in f.vocab
    assert f.task.vocab_size == len(f.vocab) == 12  # 10 learned + 2 reserved
    # independent: the 10 most frequent tokens of the train split's reviews, ties by string
    train_text = pl.read_parquet(layout.split("imdb") / "train.parquet")["text"].to_list()
    strip = str.maketrans("", "", string.punctuation)
    counts = Counter(w for t in train_text for w in t.lower().translate(strip).split())
    assert f.vocab[2:] == sorted(counts, key=lambda w: (-counts[w], w))[:10]
    assert set(f.vocab[2:]) == {"a", "bad", "good", "movie", "really", "scene", "with", "0", "1", "2"}
    assert f.task.sequence_length == 8 and f.task.name == "sentiment"
    assert {s: len(f.labels[s]) for s in f.labels} == {"train": 16, "val": 4, "test": 2}
    assert f.labels["test"].dtype == np.int64 and f.labels["test"].tolist() == [0, 1]
    seq = f.sequences["test"]
    index = {t: i for i, t in enumerate(f.vocab)}
    assert seq.dtype == np.int64 and seq.shape == (2, 8)
    assert seq[1].tolist() == [1, 1, index["good"], index["movie"], 0, 0, 0, 0]  # "an", "unseenword" -> OOV
    assert f.task.bigram_vocab_size == 12
    for kind in feat.BOW_KINDS:
        matrix = f.bow(kind, "val")
        assert matrix.dtype == np.float32 and matrix.shape == (4, 12)
    tfidf, multi = f.bow("bow_tfidf", "train"), f.bow("bow_bigram", "train")
    assert (tfidf.indices == multi.indices).all() and set(multi.data) == {1.0}
    assert (f.bow("bow_unigram", "test").toarray()[:, 1] == 1).all()  # both test docs hold OOV words
    with pytest.raises(ValueError, match="bow_trigram"):
        f.bow("bow_trigram", "train")


# --- chars -----------------------------------------------------------------------------------------
def test_char_windows_shift_by_one_and_vocab_from_train_only(project, params_dict):
    params_dict["datasets"]["shakespeare"].update(window=10)
    corpus = ("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 40)[:1900] + "#" * 100
    _, f = build(project, "shakespeare", pl.DataFrame({"text": [corpus]}), parse_params(params_dict))
    lowered = corpus.lower()
    assert f.splits == {"train": (0, 1800), "val": (1800, 1900), "test": (1900, 2000)}
    assert "#" not in f.vocab and "F" not in f.vocab and f.vocab[0] == ""  # '#' only in test; lowercase
    assert f.task.vocab_size == len(f.vocab) == len(set(lowered[:1800])) + 1
    assert (f.ids[1900:] == 0).all()
    assert f.decode(f.ids[:1800]) == lowered[:1800]
    starts = f.windows("train", stride=1)
    assert len(starts) == 1800 - 10 and starts[0] == 0
    for s in (starts[0], starts[-1]):
        inputs, targets = f.ids[s: s + 10], f.ids[s + 1: s + 11]
        assert f.decode(targets)[:-1] == f.decode(inputs)[1:]
        assert s + 11 <= 1800
    assert list(f.windows("val", stride=40)) == [1800, 1840, 1880][: len(range(1800, 1890, 40))]
    assert f.encode("FIRST z").tolist() == [f.vocab.index(c) if c in f.vocab else 0 for c in "first z"]


# --- unavailable and missing inputs ----------------------------------------------------------------
def test_unavailable_dataset_writes_meta_only(project):
    from seqbench.datasets.jena import COLUMNS
    reason = "jena_climate_2009_2016.csv.zip not found: put it in $SEQBENCH_MIRROR"
    layout, _ = build(project, "jena", hourly({c: [] for c in COLUMNS}), reason=reason)
    out = layout.features("jena")
    assert sorted(p.name for p in out.iterdir()) == ["meta.json"]
    assert feat.unavailable_reason(out) == reason
    with pytest.raises(DatasetUnavailable, match="unavailable: jena_climate"):
        feat.load_features(out)


def test_available_features_have_no_reason_and_missing_inputs_say_what_to_run(project):
    layout, _ = build(project, "synthetic", hourly({f"x{i}": np.arange(3000.0) * (i + 1) for i in range(3)}))
    assert feat.unavailable_reason(layout.features("synthetic")) is None
    with pytest.raises(DataError, match=r"split.json: not found; run `python -m seqbench split --dataset cta`"):
        feat.run(load_params(layout.params), layout, "cta")
    with pytest.raises(DataError, match=r"meta.json: not found; run `python -m seqbench features --dataset imdb`"):
        feat.load_features(layout.features("imdb"))


# --- raw-format files (tests/rawdata.py) through download -> standardize -> split -> features ------------
TINY_COUNTS = {
    "synthetic": {"train": 2100, "val": 450, "test": 450},
    "etth1": {"train": 8640, "val": 2880, "test": 2880},  # 14,600 rows: the tail is unused
    "etth2": {"train": 8640, "val": 2880, "test": 2880},
    "cta": {"train": 1096, "val": 151, "test": 305},  # to 2020-03-31; duplicated October 2017 dropped
    "jena": {"train": 3999, "val": 1999, "test": 2001},  # 8,000 rows, one duplicate timestamp
    "imdb": {"train": 32, "val": 8, "test": 40},  # 20 reviews per label and split
    "shakespeare": {"train": 18000, "val": 1000, "test": 1000},
}


@pytest.fixture(scope="module")
def tiny_mirror(tmp_path_factory) -> Path:
    import rawdata

    return rawdata.make_mirror(tmp_path_factory.mktemp("mirror"))


@pytest.mark.parametrize("name", list(TINY_COUNTS))
def test_raw_format_files_end_to_end(project, monkeypatch, tiny_mirror, name):
    f = pipeline(project, name, str(tiny_mirror), monkeypatch)
    summary = read_json(Layout(project).split(name) / "split.json")
    assert summary["status"] == "ok" and summary["counts"] == TINY_COUNTS[name]
    meta = read_json(Layout(project).features(name) / "meta.json")
    assert meta["status"] == "ok" and meta["data_hash"] == f.data_hash
    if isinstance(f, feat.ForecastFeatures):
        assert {s: b - a for s, (a, b) in f.splits.items()} == TINY_COUNTS[name]
        for task in f.tasks:
            windows = {s: len(f.windows(task, s)) for s in f.splits}
            assert windows == next(t["windows"] for t in meta["tasks"] if t["name"] == task)
            assert all(windows.values()), f"{name}/{task}: a split without windows {windows}"
    elif isinstance(f, feat.TextFeatures):
        assert {s: len(v) for s, v in f.labels.items()} == TINY_COUNTS[name]
        assert [int((f.labels["val"] == k).sum()) for k in (0, 1)] == [4, 4]
        assert "br" not in f.vocab  # the <br /> tags were removed before tokenizing
    else:
        assert {s: b - a for s, (a, b) in f.splits.items()} == TINY_COUNTS[name]
        assert f.decode(f.ids[:14]) == "first citizen:"


# --- every mirror dataset, end to end ----------------------------------------------------------------
EXPECTED = {
    "synthetic": {"train": 2100, "val": 450, "test": 450},
    "etth1": {"train": 8640, "val": 2880, "test": 2880},
    "etth2": {"train": 8640, "val": 2880, "test": 2880},
    "cta": {"train": 1096, "val": 151, "test": 914},
    "imdb": {"train": 20000, "val": 5000, "test": 25000},
    "shakespeare": {"train": 1003854, "val": 55770, "test": 55770},
}


@pytest.mark.slow
@needs_mirror
@pytest.mark.parametrize("name", list(EXPECTED))
def test_mirror_dataset_end_to_end(project, monkeypatch, name):
    f = pipeline(project, name, MIRROR, monkeypatch)
    summary = read_json(Layout(project).split(name) / "split.json")
    assert summary["status"] == "ok" and summary["counts"] == EXPECTED[name]
    if isinstance(f, feat.ForecastFeatures):
        sizes = {s: b - a for s, (a, b) in f.splits.items()}
        assert sizes == EXPECTED[name] and np.isfinite(f.series).all()
        if name == "cta":
            assert {s: len(f.windows("next_day", s)) for s in sizes} == {"train": 1040, "val": 95, "test": 858}
        if name.startswith("etth"):
            assert {s: len(f.windows("h96", s)) for s in sizes} == {"train": 8449, "val": 2785, "test": 2785}
    elif isinstance(f, feat.TextFeatures):
        assert {s: len(v) for s, v in f.labels.items()} == EXPECTED[name]
        assert f.task.vocab_size == 20002 and f.task.bigram_vocab_size == 20002
        assert f.bow("bow_tfidf", "test").shape == (25000, 20002)
        assert [int((f.labels["val"] == k).sum()) for k in (0, 1)] == [2500, 2500]
    else:
        assert {s: b - a for s, (a, b) in f.splits.items()} == EXPECTED[name]
        assert f.task.vocab_size == 40  # Geron's 39 lowercase symbols + the OOV id
        assert f.decode(f.ids[:14]) == "first citizen:"
