"""The C++ step loops (models/cells.cpp): float32 accuracy of their exp/tanh, the on-disk build cache,
and the fallback to TorchScript where they cannot be built. Their float64 numbers against nn.GRU,
nn.RNN and the masked-LSTM definition are tested with the other loops in test_models.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn

from seqbench.models import cells

needs_compiler = pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler on this machine")


@needs_compiler
def test_the_compiled_loops_are_built_where_a_compiler_exists():
    assert cells.compiled_ops() is not None  # not the silent fallback


@needs_compiler
def test_compiled_float32_tanh_is_within_two_ulp_and_keeps_infinities_and_nan():
    grid = torch.cat([torch.linspace(-20, 20, 40001), torch.logspace(-30, 1, 2000), -torch.logspace(-30, 1, 2000),
                      torch.tensor([0.0, 1e-40, 100.0, -100.0, float("inf"), float("-inf"), float("nan")])])
    # One RNN step with W_hh = 0 and b_hh = 0 from h0 = 0: h = tanh(xw), each value its own sequence.
    batch = grid.numel()
    hs = cells.compiled_ops().rnn_forward(grid.view(1, batch, 1), torch.zeros(1, 1), torch.zeros(1),
                                          torch.zeros(batch, 1))
    out = hs[1].view(-1)
    finite = torch.isfinite(grid)
    want = torch.tanh(grid[finite].double())
    relative = (out[finite].double() - want).abs() / want.abs().clamp_min(torch.finfo(torch.float32).tiny)
    assert relative.max() <= 2 * torch.finfo(torch.float32).eps  # the polynomial near 0, exp beyond 0.625
    assert out[~finite][:2].tolist() == [1.0, -1.0]
    assert torch.isnan(out[~finite][2])  # a NaN reaches the loss, where training stops with an error


def float32_and_float64(module: nn.Module, x: torch.Tensor):
    """Outputs and gradients (w.r.t. input and parameters) in float32 and float64, the same weights."""
    results = []
    for dtype in (torch.float32, torch.float64):
        m = module.to(dtype)
        xd = x.to(dtype).requires_grad_()
        out = m(xd)[0]
        cotangent = torch.ones_like(out)
        results.append([out, *torch.autograd.grad(out, [xd, *m.parameters()], cotangent)])
    module.float()
    return results


def max_error(float32, float64) -> float:
    return max(((a.double() - b) / (1 + b.abs())).abs().max().item() for a, b in zip(float32, float64, strict=True))


class MaskedLSTM(nn.Module):
    """masked_lstm with a fixed mask, as a module returning (outputs, last output) like nn.LSTM's
    (outputs, state)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(5, 7, batch_first=True)
        self.register_buffer("mask", torch.bernoulli(torch.full((6, 7), 0.75)) / 0.75)

    def forward(self, x):
        lstm = self.lstm
        return cells.masked_lstm(x, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0,
                                 self.mask)


@needs_compiler
@pytest.mark.parametrize("build", [lambda: cells.LSTM(5, 7, batch_first=True), lambda: cells.GRU(5, 7, batch_first=True),
                                   lambda: cells.RNN(5, 7, batch_first=True), MaskedLSTM],
                         ids=["lstm", "gru", "rnn", "masked_lstm"])
def test_compiled_float32_recurrences_are_as_accurate_as_the_scripted_ones(build):
    torch.manual_seed(0)
    module = build()
    # pre-activations from 1e-3 to ~30: gates in their linear range and saturated
    x = torch.randn(6, 40, 5) * torch.tensor([1e-3, 0.1, 1.0, 5.0, 30.0])
    errors = {}
    for loops in ("compiled", "scripted"):
        cells.use_loops(loops)
        try:
            errors[loops] = max_error(*float32_and_float64(module, x))
        finally:
            cells.use_loops("compiled")
    assert errors["compiled"] < 1e-5
    assert errors["compiled"] <= 4 * errors["scripted"]


def build_in(folder, source_text: str | None = None, lock_file: bool = False) -> subprocess.CompletedProcess:
    """compiled_ops() in a fresh process with its build cache in `folder`; optionally a broken source
    or a build baton left behind by a killed process."""
    script = (
        "import os, warnings, torch\n"
        "from pathlib import Path\n"
        "from seqbench.models import cells\n"
        f"source = {source_text!r}\n"
        "if source is not None:\n"
        "    broken = Path(os.environ['TORCH_EXTENSIONS_DIR']) / 'cells.cpp'\n"
        "    broken.write_text(source)\n"
        "    cells._SOURCE = broken\n"
        f"if {lock_file!r}:\n"
        "    cells.compiled_build_dir().mkdir(parents=True)\n"
        "    (cells.compiled_build_dir() / 'lock').write_text('')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    ops = cells.compiled_ops()\n"
        "print('built' if ops is not None else 'fallback')\n"
        "for w in caught:\n"
        "    print('WARNING', w.message)\n"
        "gru, x = cells.GRU(3, 4, batch_first=True), torch.randn(2, 5, 3)\n"
        "print('trains like nn.GRU:', bool(torch.allclose(gru(x)[0], torch.nn.GRU.forward(gru, x)[0], atol=1e-6)))\n"
    )
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(folder)}
    return subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env,
                          timeout=180)


@needs_compiler
@pytest.mark.slow
def test_a_source_that_does_not_compile_falls_back_to_torchscript_with_a_warning(tmp_path):
    result = build_in(tmp_path, source_text="this is not C++;\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "fallback"
    warning = next(line for line in lines if line.startswith("WARNING"))
    assert "could not be built" in warning and "cells.cpp" in warning and "TorchScript" in warning
    assert "trains like nn.GRU: True" in lines


@needs_compiler
@pytest.mark.slow
def test_a_build_baton_left_by_a_killed_process_does_not_block_the_next_build(tmp_path):
    result = build_in(tmp_path, lock_file=True)  # torch alone would wait for this file forever (timeout)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "built"
    assert "trains like nn.GRU: True" in result.stdout.splitlines()


@needs_compiler
@pytest.mark.parametrize("split", [False, True], ids=["one-block", "two-blocks"])
def test_the_aten_gemm_fallback_gives_the_numbers_of_the_blas_calls(split):
    """Where torch's library exports no BLAS GEMM, the loops multiply through at::mm_out on views with the
    same leading dimensions ($SEQBENCH_ATEN_GEMM takes that path here). Both match nn's modules in float64,
    with 20 rows split over two threads' blocks or not."""
    script = (
        "import torch\n"
        "from seqbench.models import cells\n"
        f"torch.set_num_threads({2 if split else 1})\n"
        "torch.manual_seed(0)\n"
        "worst = 0.0\n"
        "for cell, reference in ((cells.LSTM, torch.nn.LSTM), (cells.GRU, torch.nn.GRU), (cells.RNN, torch.nn.RNN)):\n"
        "    ref = reference(4, 6, num_layers=2, batch_first=True).double()\n"
        "    own = cell(4, 6, num_layers=2, batch_first=True).double()\n"
        "    own.load_state_dict(ref.state_dict())\n"
        "    x = torch.randn(20, 7, 4, dtype=torch.float64, requires_grad=True)\n"
        "    outs = [m(x)[0] for m in (own, ref)]\n"
        "    grads = [torch.autograd.grad((o * o).sum(), [x, *m.parameters()]) for o, m in zip(outs, (own, ref))]\n"
        "    worst = max([worst, (outs[0] - outs[1]).abs().max().item()]\n"
        "                + [(a - b).abs().max().item() for a, b in zip(*grads)])\n"
        "print(cells.compiled_ops().calls_blas(), worst)\n"
    )
    errors = {}
    for name, extra in (("blas", {}), ("aten", {"SEQBENCH_ATEN_GEMM": "1"})):
        env = {key: value for key, value in os.environ.items() if key != "SEQBENCH_ATEN_GEMM"}
        result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                                env={**env, **extra}, timeout=300)
        assert result.returncode == 0, result.stderr
        calls_blas, worst = result.stdout.split()[-2:]
        assert calls_blas == str(name == "blas")
        errors[name] = float(worst)
    assert errors["blas"] < 1e-12 and errors["aten"] < 1e-12, errors
