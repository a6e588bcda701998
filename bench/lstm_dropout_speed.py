"""Time one training step (forward + backward) of lstm_dropout against nn.LSTM of the same size.

    .venv/bin/python bench/lstm_dropout_speed.py [--threads 2] [--reps 20] [--compile]

Default shape is the brief's: B=256, T=120, F=14, H=32 (Jena with Chollet's
LSTM(32, recurrent_dropout=0.25)). Timed, interleaved round robin (the machine may be shared), median:
  * the registry's models: `lstm` (units=32, fused nn.LSTM) and `lstm_dropout` (training mode),
    each with its Dense head and an MSE loss: the ratio the brief asks for;
  * the recurrence alone, by implementation: nn.LSTM, the step-by-step autograd definition (eager
    and torch.jit.script), the custom-backward recurrence with plain, TorchScript and C++ loops, and
    with --compile torch.compile of the definition (its warm-up did not finish in 10 minutes on a
    2-core CPU: every one of the 120 steps is traced and compiled).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from torch import nn

from seqbench.models import REGISTRY, cells
from seqbench.tasks import ForecastTask


def _train_step(forward, params, y):
    def step():
        for p in params:
            p.grad = None
        nn.functional.mse_loss(forward(), y).backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--features", type=int, default=14)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the definition")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, T, F, H = args.batch, args.steps, args.features, args.hidden
    task = ForecastTask("bench", T, 1, tuple(f"x{i}" for i in range(F)), ("x0",))
    x, y = torch.randn(B, T, F), torch.randn(B, 1, 1)
    steps = {}
    for name in ("lstm", "lstm_dropout"):
        entry = REGISTRY[name]
        model = entry.build(task, entry.settings(units=H)).train()

        def forward(m=model):
            cells.use_loops("compiled")  # the default (variants below switch it)
            return m(x)

        steps[f"model {name}"] = _train_step(forward, list(model.parameters()), y)

    lstm, head = nn.LSTM(F, H, batch_first=True), nn.Linear(H, 1)
    weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    params = [*weights, *head.parameters()]

    def mask():
        return torch.empty(B, H).bernoulli_(0.75) / 0.75

    def custom(loops: str):
        def run():
            cells.use_loops(loops)
            return cells.masked_lstm(x, *weights, mask())[0]  # all outputs, like the other rows
        return run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted_definition = torch.jit.script(cells.reference_masked_lstm)
    recurrences = {
        "nn.LSTM (no mask)": lambda: lstm(x)[0],
        "definition, eager autograd": lambda: cells.reference_masked_lstm(x, *weights, mask()),
        "definition, torch.jit.script": lambda: scripted_definition(x, *weights, mask()),
        "custom backward, plain loops": custom("python"),
        "custom backward, TorchScript loops": custom("scripted"),
        "custom backward, C++ loops": custom("compiled"),
    }
    if args.compile:
        compiled = torch.compile(cells.reference_masked_lstm)
        t0 = time.perf_counter()
        compiled(x, *weights, mask()).sum().backward()
        print(f"torch.compile warm-up: {time.perf_counter() - t0:.1f} s")
        recurrences["definition, torch.compile"] = lambda: compiled(x, *weights, mask())
    for name, recurrence in recurrences.items():
        steps[name] = _train_step(lambda r=recurrence: head(r()[:, -1]).unsqueeze(1), params, y)

    for step in steps.values():  # warm-up (TorchScript profiles its first calls)
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.reps):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    cells.use_loops("compiled")
    print(f"B={B} T={T} F={F} H={H} threads={args.threads} reps={args.reps} torch={torch.__version__}")
    print(f"{'':36s} {'median':>8s} {'ratio':>6s} {'min':>8s} {'ratio':>6s}  (min: least disturbed by other load)")
    for group, base in (("model ", "model lstm"), ("", "nn.LSTM (no mask)")):
        ref_med, ref_min = statistics.median(times[base]), min(times[base])
        for name, ts in times.items():
            if name.startswith("model ") == bool(group):
                med, low = statistics.median(ts), min(ts)
                print(f"{name:36s} {1000 * med:8.1f} {med / ref_med:6.2f} {1000 * low:8.1f} {low / ref_min:6.2f}"
                      f"  ms/step, ratios to {base}")


if __name__ == "__main__":
    main()
