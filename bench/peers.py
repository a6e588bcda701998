"""seqbench against Keras 3 (TensorFlow backend) and darts on the same training work, side by side.

    make bench-peers            (installs Keras/TensorFlow/darts into .venv-peers, never the main .venv)
    python bench/peers.py [--threads N] [--epochs K] [--work DIR] [--archs A ...]

The work: one epoch over the Jena training windows of the standard preset (120 hourly steps x 14
features, target = temperature 24 h after the last input, every 4th window: 52,391 windows, batch
256, MSE loss, RMSprop lr 1e-3) from a full-size generated Jena-format file, on the same scaled series.
- seqbench: the train stage's own path (make_job / make_data / train_epoch, as bench/training.py).
- Keras: an equivalent model fed by keras.utils.timeseries_dataset_from_array over the same array
  (sampling_rate 6, sequence_stride 4, start_index/end_index of the train split: the same windows).
- darts: BlockRNNModel (its many-to-one RNN; RNNModel is autoregressive and takes no past covariates)
  where it has the architecture: six hourly series (one per 10-minute phase) with the temperature as
  target, the other 13 columns as past covariates, output_chunk_shift 23 (24 h ahead), capped at the same
  number of windows per epoch.
Each framework runs in its own worker process (its thread pools idle while another works); epochs
alternate seqbench, Keras, darts, seqbench, ... after one warm-up epoch each (tracing, compilation,
first-touch allocation: reported apart). Reported: the median of the timed epochs, the ratio
seqbench / peer, and for recurrent models the achieved GFLOP/s against a large float32 matmul timed in
the same run. FLOPs counted: the gate matmuls only, 2 * gates * units * (inputs + units) per step and
layer (gates: LSTM 4, GRU 3; bidirectional x2), times windows; training = 3 x forward.
Writes reports/bench/peers.json and reports/bench/peers.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

# label -> (seqbench model, settings overrides, recurrent (cell, units, layers) or None, darts spec or None)
ARCHS = {
    "lstm (16)": ("lstm", {"units": 16}, ("lstm", 16, 1), {"model": "LSTM", "hidden_dim": 16, "n_rnn_layers": 1}),
    "lstm (32)": ("lstm", {"units": 32}, ("lstm", 32, 1), {"model": "LSTM", "hidden_dim": 32, "n_rnn_layers": 1}),
    "gru (32)": ("gru", {"units": 32}, ("gru", 32, 1), {"model": "GRU", "hidden_dim": 32, "n_rnn_layers": 1}),
    "stacked_gru": ("stacked_gru", {}, ("gru", 32, 2),
                    {"model": "GRU", "hidden_dim": 32, "n_rnn_layers": 2, "dropout": 0.5}),
    "lstm_dropout": ("lstm_dropout", {}, ("lstm", 32, 1), None),
    "cnn1d": ("cnn1d", {}, None, None),
    "transformer": ("transformer", {}, None, None),
}
FEATURES, LOOKBACK, SAMPLING, DELAY_ROWS, STRIDE = 14, 120, 6, 144, 4


def recurrent_flops_per_window(cell: str, units: int, layers: int) -> float:
    gates = 4 if cell == "lstm" else 3
    first = 2 * gates * units * (FEATURES + units)
    rest = 2 * gates * units * (units + units)
    return 3.0 * LOOKBACK * (first + (layers - 1) * rest)  # forward + backward = 3 x forward


# --- workers: each lives in its own process and answers "epoch" with that epoch's seconds ------------
def seqbench_worker(conn, project: str, model: str, overrides: dict, threads: int) -> None:
    from training import Runner  # bench/training.py: the train stage's own setup

    runner = Runner(Path(project), model, overrides, threads)
    conn.send({"windows": len(runner.train_ids), "params": int(runner.params_count)})
    while conn.recv() == "epoch":
        began = time.perf_counter()
        runner.run(runner.train_ids)
        conn.send(time.perf_counter() - began)


def keras_model(keras, label: str):
    layers = keras.layers
    inputs = keras.Input((LOOKBACK, FEATURES))
    if label.startswith(("lstm (", "gru (")):
        cell = layers.LSTM if label.startswith("lstm") else layers.GRU
        x = cell(int(label.split("(")[1].rstrip(")")))(inputs)
    elif label == "stacked_gru":
        x = layers.GRU(32, return_sequences=True)(inputs)
        x = layers.Dropout(0.5)(x)
        x = layers.GRU(32)(x)
    elif label == "lstm_dropout":  # Chollet: LSTM(32, recurrent_dropout=0.25) + Dropout(0.5)
        x = layers.Dropout(0.5)(layers.LSTM(32, recurrent_dropout=0.25)(inputs))
    elif label == "cnn1d":  # Chollet's 1D convnet
        x = layers.MaxPooling1D(2)(layers.Conv1D(8, 24, activation="relu")(inputs))
        x = layers.MaxPooling1D(2)(layers.Conv1D(8, 12, activation="relu")(x))
        x = layers.GlobalAveragePooling1D()(layers.Conv1D(8, 6, activation="relu")(x))
    elif label == "transformer":  # seqbench's: 8-step patch tokens, 2 pre-norm blocks, d 32, 4 heads, ff 64
        import numpy as np

        from seqbench.models.transformer import sinusoidal_positions

        x = layers.Dense(32)(layers.Reshape((LOOKBACK // 8, 8 * FEATURES))(inputs))
        x = layers.Dropout(0.1)(x + np.asarray(sinusoidal_positions(LOOKBACK // 8, 32)))
        for _ in range(2):
            h = layers.LayerNormalization()(x)
            x = x + layers.Dropout(0.1)(layers.MultiHeadAttention(4, 8, dropout=0.1)(h, h))
            h = layers.Dense(64, activation="relu")(layers.LayerNormalization()(x))
            x = x + layers.Dropout(0.1)(layers.Dense(32)(layers.Dropout(0.1)(h)))
        x = layers.LayerNormalization()(x)[:, -1]
    else:
        raise ValueError(label)
    model = keras.Model(inputs, layers.Dense(1)(x))
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3, rho=0.9), loss="mse")
    return model


def keras_worker(conn, project: str, label: str, threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from seqbench import features as feature_loader
    from seqbench.paths import Layout

    feats = feature_loader.load_features(Layout(Path(project)).features("jena"))
    series, (_, n_train) = feats.series, feats.splits["train"]
    target = series[:, feats.column_index(["T (degC)"])[0]]
    delay = SAMPLING * (LOOKBACK - 1) + DELAY_ROWS  # Chollet: sampling_rate * (sequence_length + 24 - 1)
    keras.utils.set_random_seed(0)
    dataset = keras.utils.timeseries_dataset_from_array(
        series[:-delay], targets=target[delay:], sampling_rate=SAMPLING, sequence_length=LOOKBACK,
        sequence_stride=STRIDE, shuffle=True, seed=0, batch_size=256, start_index=0, end_index=n_train)
    model = keras_model(keras, label)
    windows = sum(int(x.shape[0]) for x, _ in dataset)
    conn.send({"windows": windows, "params": int(model.count_params())})
    while conn.recv() == "epoch":
        began = time.perf_counter()
        model.fit(dataset, epochs=1, verbose=0)
        conn.send(time.perf_counter() - began)


def darts_worker(conn, project: str, spec: dict, threads: int, windows: int) -> None:
    import numpy as np
    import torch
    from darts import TimeSeries
    from darts.models import BlockRNNModel
    from pytorch_lightning.callbacks import Callback

    torch.set_num_threads(threads)
    from seqbench import features as feature_loader
    from seqbench.paths import Layout

    feats = feature_loader.load_features(Layout(Path(project)).features("jena"))
    _, n_train = feats.splits["train"]
    t_index = feats.column_index(["T (degC)"])[0]
    others = [i for i in range(FEATURES) if i != t_index]
    targets, covariates = [], []
    for phase in range(SAMPLING):  # hourly series, one per 10-minute phase: the windows of sampling rate 6
        rows = feats.series[phase:n_train:SAMPLING].astype(np.float32)
        targets.append(TimeSeries.from_values(rows[:, [t_index]]))
        covariates.append(TimeSeries.from_values(rows[:, others]))

    class EpochTimer(Callback):
        def on_train_epoch_start(self, trainer, module):
            self.began = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            self.seconds = time.perf_counter() - self.began

    timer = EpochTimer()
    model = BlockRNNModel(input_chunk_length=LOOKBACK, output_chunk_length=1, output_chunk_shift=DELAY_ROWS // SAMPLING - 1,
                          batch_size=256, n_epochs=1, random_state=0, loss_fn=torch.nn.MSELoss(),
                          optimizer_cls=torch.optim.RMSprop, optimizer_kwargs={"lr": 1e-3, "alpha": 0.9},
                          pl_trainer_kwargs={"accelerator": "cpu", "callbacks": [timer], "enable_progress_bar": False,
                                             "enable_model_summary": False, "logger": False}, **spec)
    per_series = -(-windows // SAMPLING)
    conn.send({"windows": per_series * SAMPLING, "params": None})
    while conn.recv() == "epoch":
        model.fit(targets, past_covariates=covariates, epochs=1, max_samples_per_ts=per_series, verbose=False)
        conn.send(timer.seconds)


# --- orchestration ---------------------------------------------------------------------------------
def matmul_peak(threads: int, n: int = 2048, repeats: int = 10) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - began)
    return 2 * n**3 / statistics.median(times) / 1e9


def compiled_loops_seconds() -> dict:
    """Seconds to build the C++ step loops (models/cells.cpp) on an empty cache, then for a later process
    to load them from it: what a training job pays before its first step (the warm-up epochs above run
    with the cache already built)."""
    import subprocess

    script = ("import time\nfrom seqbench.models import cells\nt = time.perf_counter()\n"
              "assert cells.compiled_ops() is not None\nprint(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory(prefix="seqbench-cells-") as cache:
        env = {**os.environ, "TORCH_EXTENSIONS_DIR": cache}
        seconds = [float(subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True,
                                        text=True).stdout.split()[-1]) for _ in range(2)]
    return {"cold_build_seconds": round(seconds[0], 1), "cached_load_seconds": round(seconds[1], 3)}


def compare(label: str, project: Path, threads: int, epochs: int) -> dict:
    model, overrides, recurrent, darts_spec = ARCHS[label]
    context = mp.get_context("spawn")
    workers = {}
    targets = {"seqbench": (seqbench_worker, (str(project), model, overrides, threads)),
               "keras": (keras_worker, (str(project), label, threads))}
    for name, (function, args) in targets.items():
        parent, child = context.Pipe()
        process = context.Process(target=function, args=(child, *args), daemon=True)
        process.start()
        workers[name] = (process, parent, parent.recv())
    if darts_spec is not None:
        parent, child = context.Pipe()
        windows = workers["seqbench"][2]["windows"]
        process = context.Process(target=darts_worker, args=(child, str(project), darts_spec, threads, windows),
                                  daemon=True)
        process.start()
        workers["darts"] = (process, parent, parent.recv())
    seconds = {name: [] for name in workers}
    try:
        for _ in range(epochs + 1):  # the first round is the warm-up
            for name, (_, conn, _) in workers.items():  # A B C A B C ...: the same machine state for all
                conn.send("epoch")
                seconds[name].append(conn.recv())
                print(f"  {label} {name}: {seconds[name][-1]:.1f} s", file=sys.stderr)
    finally:
        for process, conn, _ in workers.values():
            conn.send("stop")
            process.join(timeout=60)
    result = {"label": label, "model": model, "settings": overrides}
    for name, (_, _, info) in workers.items():
        timed = seconds[name][1:]
        result[name] = {"warmup_seconds": round(seconds[name][0], 2), "epoch_seconds": [round(s, 2) for s in timed],
                        "median_seconds": round(statistics.median(timed), 2), **info}
    for peer in ("keras", "darts"):
        if peer in result:
            result[f"ratio_{peer}"] = round(result["seqbench"]["median_seconds"] / result[peer]["median_seconds"], 3)
    if recurrent is not None:
        flops = recurrent_flops_per_window(*recurrent)
        for name in workers:
            r = result[name]
            r["gflops_per_second"] = round(flops * r["windows"] / r["median_seconds"] / 1e9, 2)
    return result


def markdown(report: dict) -> str:
    lines = [
        "# seqbench against Keras and darts: one training epoch on the same Jena windows",
        "",
        f"Generated by `make bench-peers` (`python bench/peers.py`) on {report['machine']}; "
        f"{report['threads']} threads for every framework; torch {report['versions']['torch']}, "
        f"Keras {report['versions']['keras']} (TensorFlow {report['versions']['tensorflow']}), "
        f"darts {report['versions']['darts']}. {report['windows']} windows of 120 x 14, batch 256, MSE, RMSprop. "
        f"Median of {report['epochs']} timed epochs per framework, alternated (seqbench, Keras, darts, ...) after "
        f"one warm-up epoch each. Ratio = seqbench / peer (below 1: seqbench faster). Matmul peak: "
        f"{report['matmul_gflops']:.1f} GFLOP/s (float32 2048x2048, same threads).",
        "",
        "| architecture | seqbench s/epoch | Keras s/epoch | ratio vs Keras | darts s/epoch | ratio vs darts "
        "| seqbench GFLOP/s (% of peak) | Keras GFLOP/s | warm-up s (seqbench / Keras) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        darts = r.get("darts")
        gflops = r["seqbench"].get("gflops_per_second")
        peak_share = f"{gflops:.1f} ({100 * gflops / report['matmul_gflops']:.0f}%)" if gflops else "–"
        keras_gflops = r["keras"].get("gflops_per_second")
        lines.append(
            f"| {r['label']} | {r['seqbench']['median_seconds']:.1f} | {r['keras']['median_seconds']:.1f} | "
            f"{r['ratio_keras']:.2f} | {darts['median_seconds']:.1f} | {r['ratio_darts']:.2f} | " if darts else
            f"| {r['label']} | {r['seqbench']['median_seconds']:.1f} | {r['keras']['median_seconds']:.1f} | "
            f"{r['ratio_keras']:.2f} | – | – | ")
        lines[-1] += (f"{peak_share} | {f'{keras_gflops:.1f}' if keras_gflops else '–'} | "
                      f"{r['seqbench']['warmup_seconds']:.1f} / {r['keras']['warmup_seconds']:.1f} |")
    lines += ["", ("FLOPs counted: gate matmuls only, 2 x gates x units x (inputs + units) per step and layer "
                   "(LSTM 4 gates, GRU 3), x 120 steps x windows; a training step = 3 x the forward FLOPs.")]
    built = report["compiled_loops"]
    lines += ["", (f"The C++ step loops of the lstm, gru, stacked_gru and lstm_dropout rows (models/cells.cpp) are "
                   f"compiled once per machine and torch install: {built['cold_build_seconds']:.1f} s on an empty "
                   f"cache, then {built['cached_load_seconds']:.2f} s for each later process to load them "
                   "(the warm-up column includes any build). With 2 or more threads, each thread runs the whole "
                   "time loop over its own rows of the batch.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per framework (after one warm-up)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the generated data (kept, reused)")
    parser.add_argument("--archs", nargs="*", default=list(ARCHS), choices=list(ARCHS))
    args = parser.parse_args()

    from importlib.metadata import version

    from training import prepare

    from seqbench.io import write_json, write_text

    project = prepare(args.work or Path(tempfile.mkdtemp(prefix="seqbench-peers-")))
    compiled_loops = compiled_loops_seconds()
    peak = matmul_peak(args.threads)
    results = []
    for label in args.archs:
        results.append(compare(label, project, args.threads, args.epochs))
        peak = max(peak, matmul_peak(args.threads))  # re-measured between architectures: the best seen
    report = {"machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
              "threads": args.threads, "epochs": args.epochs, "matmul_gflops": round(peak, 1),
              "windows": results[0]["seqbench"]["windows"], "compiled_loops": compiled_loops,
              "versions": {name: version(name) for name in ("torch", "keras", "tensorflow", "darts")},
              "results": results}
    write_json(ROOT / "reports" / "bench" / "peers.json", report)
    text = markdown(report)
    write_text(ROOT / "reports" / "bench" / "peers.md", text)
    print(text)


if __name__ == "__main__":
    main()
