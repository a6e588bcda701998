"""Instance normalization and channel independence, put around any learned forecast model by the registry,
and the closed-form linear reference (linear_ls)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from seqbench import windows
from seqbench.batches import ForecastData
from seqbench.errors import TrainingError
from seqbench.features import ForecastFeatures
from seqbench.models import REGISTRY
from seqbench.models.settings import forecast_input, with_forecast_input
from seqbench.tasks import ForecastTask

LOOKBACK, HORIZON = 24, 6
# every model that takes the input handling settings, in every mode
HANDLED = [name for name, entry in REGISTRY.items()
           if "forecast_multi" in entry.kinds and forecast_input(entry.settings()) is not None]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors, one torch thread


def build(name: str, task: ForecastTask, instance_norm: str, channel_independent: bool, seed: int = 0):
    torch.manual_seed(seed)
    entry = REGISTRY[name]
    settings = with_forecast_input(entry.settings(), instance_norm=instance_norm,
                                   channel_independent=channel_independent)
    model = entry.build(task, settings).eval()
    if name == "linear_ls":  # fit it, so its map is not all zeros
        x = torch.randn(64, task.lookback, task.n_inputs, generator=torch.Generator().manual_seed(1))
        y = x[:, -HORIZON:, list(task.target_positions)] * 0.5 + 0.1
        model.closed_form_accumulate(x, y)
        model.closed_form_solve(0.1)
    return model


def test_every_learned_forecast_model_takes_the_settings():
    assert set(HANDLED) == {"linear", "linear_ls", "dlinear", "mlp", "cnn1d", "rnn", "deep_rnn", "lstm",
                            "lstm_dropout", "gru", "stacked_gru", "bilstm", "conv_gru", "seq2seq", "transformer"}


@pytest.mark.parametrize("channel_independent", [False, True], ids=["joint", "channel-independent"])
@pytest.mark.parametrize("mode", ["revin", "revin_affine"])
@pytest.mark.parametrize("name", HANDLED)
def test_a_shift_or_scale_of_a_variable_moves_its_forecast_alike(name, mode, channel_independent):
    if name == "linear_ls" and mode == "revin_affine":
        pytest.skip("a closed-form fit takes no learned affine (tested below)")
    inputs = ("a", "b", "c")
    targets = inputs if channel_independent else ("c", "a")  # out of input order: target_positions matter
    task = ForecastTask("t", LOOKBACK, HORIZON, inputs, targets)
    model = build(name, task, mode, channel_independent)
    if mode == "revin_affine":  # a learned scale and shift that are not the identity
        with torch.no_grad():
            model.weight.copy_(torch.tensor([1.5, 0.7, 1.2]))
            model.bias.copy_(torch.tensor([0.3, -0.2, 0.1]))
    x = torch.randn(5, LOOKBACK, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float32)
    with torch.no_grad():
        base = model(x)
        shifted_x, scaled_x = x.clone(), x.clone()
        shifted_x[..., 0] += 3.0  # variable a
        scaled_x[..., 0] *= 2.5
        shifted, scaled = model(shifted_x), model(scaled_x)
    a = targets.index("a")
    others = [i for i in range(len(targets)) if i != a]
    tol = {"rtol": 1e-4, "atol": 1e-4}
    torch.testing.assert_close(shifted[..., a], base[..., a] + 3.0, **tol)
    torch.testing.assert_close(shifted[..., others], base[..., others], **tol)
    torch.testing.assert_close(scaled[..., a], base[..., a] * 2.5, **tol)
    torch.testing.assert_close(scaled[..., others], base[..., others], **tol)


@pytest.mark.parametrize("name", HANDLED)
def test_without_instance_norm_a_shift_is_not_passed_through(name):
    """The property above comes from the wrapper, not from the models (it would hide a missing wrapper)."""
    task = ForecastTask("t", LOOKBACK, HORIZON, ("a", "b"), ("a", "b"))
    model = build(name, task, "none", False)
    x = torch.randn(4, LOOKBACK, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        base = model(x)
        x[..., 0] += 3.0
        moved = model(x)
    assert not torch.allclose(moved[..., 0], base[..., 0] + 3.0, atol=1e-3)


@pytest.mark.parametrize("name", HANDLED)
def test_channel_independent_forecasts_read_only_their_own_variable(name):
    task = ForecastTask("t", LOOKBACK, HORIZON, ("a", "b", "c"), ("a", "b", "c"))
    model = build(name, task, "none", True)
    x = torch.randn(4, LOOKBACK, 3, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        base = model(x)
        x[..., 1] = torch.randn(4, LOOKBACK, generator=torch.Generator().manual_seed(5))
        changed = model(x)
    torch.testing.assert_close(changed[..., [0, 2]], base[..., [0, 2]])
    assert not torch.allclose(changed[..., 1], base[..., 1])
    # one network for all variables: the same series in two variables gets the same forecast
    x[..., 2] = x[..., 0]
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out[..., 2], out[..., 0])


def test_channel_independence_needs_the_same_variables_in_and_out():
    task = ForecastTask("multivariate", LOOKBACK, 1, ("bus", "rail"), ("rail",))
    with pytest.raises(TrainingError, match="channel_independent needs a task whose inputs and targets are the same"):
        build("gru", task, "none", True)


@pytest.mark.parametrize("name", ["gru", "seq2seq", "transformer", "dlinear"])
def test_no_statistic_reads_a_target_step(name):
    """Windows whose target rows are NaN still get finite forecasts: the statistics come from the inputs."""
    task = ForecastTask("h6", LOOKBACK, HORIZON, ("a", "b"), ("a", "b"))
    steps = 200
    series = np.random.default_rng(0).normal(size=(steps, 2)).astype(np.float32)
    starts = np.arange(0, 150, LOOKBACK + HORIZON)  # windows apart: one's targets are no other's inputs
    for s in starts:  # every target row of these windows
        series[s + LOOKBACK:s + LOOKBACK + HORIZON] = np.nan
    series[starts.max() + LOOKBACK + HORIZON:] = np.nan
    feats = ForecastFeatures(series=series, timestamps=np.arange(steps).astype("datetime64[h]").astype("datetime64[ns]"),
                             columns=("a", "b"), mean=np.zeros(2), scale=np.ones(2), metric_units="scaled",
                             splits={"train": (0, steps), "val": (0, steps), "test": (0, steps)}, tasks={"h6": task},
                             data_hash="nan-targets")
    data = ForecastData(feats, task, torch.device("cpu"), every_step=REGISTRY[name].every_step)
    x, y = data.batch("test", starts)
    assert torch.isnan(y).all() and torch.isfinite(x).all()
    model = build(name, task, "revin", True)
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()


# --- linear_ls ------------------------------------------------------------------------------------
def window_arrays(series: np.ndarray, starts, lookback: int = LOOKBACK,
                  horizon: int = HORIZON) -> tuple[np.ndarray, np.ndarray]:
    """(N, lookback, F), (N, horizon, F): the input and target windows starting at `starts`."""
    x = np.stack([series[s:s + lookback] for s in starts])
    y = np.stack([series[s + lookback:s + lookback + horizon] for s in starts])
    return x, y


def windows_of(series: np.ndarray, starts, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(N*F, lookback), (N*F, horizon): each variable's window a row, as Zeng et al.'s Linear reads it."""
    x, y = window_arrays(series, starts, lookback, horizon)
    return x.transpose(0, 2, 1).reshape(-1, lookback), y.transpose(0, 2, 1).reshape(-1, horizon)


def numpy_least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    design = np.hstack([x, np.ones((len(x), 1))])
    return np.linalg.lstsq(design, y, rcond=None)[0]  # (T + 1, H): the map, then the bias


def test_linear_ls_without_ridge_is_the_least_squares_solution():
    rng = np.random.default_rng(0)
    series = np.cumsum(rng.normal(size=(400, 3)), axis=0).astype(np.float64)
    task = ForecastTask("h6", LOOKBACK, HORIZON, ("a", "b", "c"), ("a", "b", "c"))
    starts = np.arange(0, 400 - LOOKBACK - HORIZON)
    model = REGISTRY["linear_ls"].build(task, REGISTRY["linear_ls"].settings())
    x, y = (torch.as_tensor(a, dtype=torch.float32) for a in window_arrays(series, starts))
    for chunk in range(0, len(starts), 100):  # streamed in pieces, as the training loop does
        model.closed_form_accumulate(x[chunk:chunk + 100], y[chunk:chunk + 100])
    model.closed_form_solve(0.0)
    solution = numpy_least_squares(*windows_of(series.astype(np.float32).astype(np.float64), starts, LOOKBACK, HORIZON))
    np.testing.assert_allclose(model.weight.numpy().T, solution[:-1], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(model.bias.numpy(), solution[-1], rtol=1e-3, atol=1e-4)
    model.closed_form_solve(10.0)  # a ridge penalty shrinks the map
    assert np.abs(model.weight.numpy()).sum() < np.abs(solution[:-1]).sum()


@pytest.mark.parametrize("channel_independent", [False, True], ids=["joint", "channel-independent"])
def test_linear_ls_with_instance_norm_minimizes_the_error_of_the_forecast_itself(channel_independent):
    """Under RevIN the closed-form map minimizes the MSE of the de-normalized forecast (what the learned models
    train on): at the fit, that loss has no slope. Nearly flat windows (std ~1e-3) are where a fit in the
    normalized space goes wrong: their normalized targets are ~1000x larger and would dominate it."""
    rng = np.random.default_rng(0)
    series = np.cumsum(rng.normal(size=(300, 2)), axis=0)
    series[100:160] = series[100] + rng.normal(scale=1e-3, size=(60, 2))  # a nearly flat stretch
    task = ForecastTask("h6", LOOKBACK, HORIZON, ("a", "b"), ("a", "b"))
    settings = with_forecast_input(REGISTRY["linear_ls"].settings(), instance_norm="revin",
                                   channel_independent=channel_independent)
    model = REGISTRY["linear_ls"].build(task, settings).double()
    starts = np.arange(0, 300 - LOOKBACK - HORIZON)
    x, y = map(torch.as_tensor, window_arrays(series, starts))
    model.closed_form_accumulate(x, y)
    model.closed_form_solve(0.0)
    inner = next(m for m in model.modules() if type(m).__name__ == "LinearLS")
    weight, bias = inner.weight.clone().requires_grad_(), inner.bias.clone().requires_grad_()
    with torch.no_grad():
        inner.weight.zero_(), inner.bias.zero_()
    # the same forecast as a function of (weight, bias): through the registry's wrappers, with the map's
    # buffers replaced by leaf tensors whose gradient we can read
    del inner.weight, inner.bias
    inner.weight, inner.bias = weight, bias
    loss = torch.mean((model(x) - y) ** 2)
    loss.backward()
    scale = loss.item() / weight.detach().abs().mean().item()  # a loss-per-weight unit for "no slope"
    assert float(weight.grad.abs().max()) < 1e-6 * scale
    assert float(bias.grad.abs().max()) < 1e-6 * scale


def test_linear_ls_with_instance_norm_is_the_same_map_whatever_the_rounding():
    """Without a ridge, instance normalization makes the normal equations singular (each normalized window sums
    to zero, so a constant added to a row of the map changes no forecast). Another machine's rounding (1e-12 of
    the matrix, symmetric: what summing 10^4 windows in float64 leaves) must not change the map: the fit is the
    minimum-norm one, each row of the map summing to zero, not whichever one a solver's rank guess picks (the
    previous lstsq solve moved by 0.16 here)."""
    rng = np.random.default_rng(1)
    series = np.cumsum(rng.normal(size=(300, 2)), axis=0)
    task = ForecastTask("h6", LOOKBACK, HORIZON, ("a", "b"), ("a", "b"))
    model = REGISTRY["linear_ls"].build(task, with_forecast_input(REGISTRY["linear_ls"].settings(),
                                                                  instance_norm="revin")).double()
    starts = np.arange(0, 300 - LOOKBACK - HORIZON)
    model.closed_form_accumulate(*map(torch.as_tensor, window_arrays(series, starts)))
    inner = next(m for m in model.modules() if type(m).__name__ == "LinearLS")
    model.closed_form_solve(0.0)
    fitted = inner.weight.clone()
    np.testing.assert_allclose(fitted.sum(1).numpy(), 0.0, atol=1e-9)
    noise = torch.as_tensor(rng.normal(size=inner._xtx.shape)) * 1e-12 * inner._xtx.abs().max()
    inner._xtx += noise + noise.T
    model.closed_form_solve(0.0)
    np.testing.assert_allclose(inner.weight.numpy(), fitted.numpy(), atol=1e-9)


def test_a_closed_form_fit_refuses_a_learned_affine():
    task = ForecastTask("t", LOOKBACK, HORIZON, ("a",), ("a",))
    model = REGISTRY["linear_ls"].build(
        task, with_forecast_input(REGISTRY["linear_ls"].settings(), instance_norm="revin_affine"))
    with pytest.raises(TrainingError, match="revin_affine has learned parameters"):
        model.closed_form_accumulate(torch.zeros(2, LOOKBACK, 1), torch.zeros(2, HORIZON, 1))


ETT_MIRROR = [Path(p) for p in os.environ.get("SEQBENCH_MIRROR", "").split(os.pathsep) if p]


@pytest.mark.skipif(not any((p / "ETTh1.csv").is_file() for p in ETT_MIRROR),
                    reason="the real ETTh1.csv is in no folder of $SEQBENCH_MIRROR (.ci/run sets it)")
def test_linear_ls_reproduces_the_least_squares_reference_on_etth1(tmp_path, monkeypatch):
    """ETTh1 h96, look-back 96, no ridge: test MSE 0.3815 from a plain numpy solve, and linear_ls the same."""
    from seqbench import download, features, split, standardize
    from seqbench.job import make_job
    from seqbench.loop import fit_task
    from seqbench.params import load_params
    from seqbench.paths import Layout

    root = Path(__file__).resolve().parents[1]
    params_text = (root / "params.yaml").read_text() + "\n"
    # the full preset: every training window, as the reference solve uses
    params_text = params_text.replace("\npreset: standard", "\npreset: full")
    (tmp_path / "params.yaml").write_text(params_text.replace("models: {}", "models: {linear_ls: {ridge: [0.0], instance_norm: none}}"))
    params, layout = load_params(tmp_path / "params.yaml"), Layout(tmp_path)
    for stage in (download, standardize, split, features):
        stage.run(params, layout, "etth1")
    feats = features.load_features(layout.features("etth1"))
    series = feats.series.astype(np.float64)
    train_x, train_y = windows_of(series, feats.windows("h96", "train"), 96, 96)
    test_x, test_y = windows_of(series, feats.windows("h96", "test"), 96, 96)
    solution = numpy_least_squares(train_x, train_y)
    reference = float(np.mean((np.hstack([test_x, np.ones((len(test_x), 1))]) @ solution - test_y) ** 2))
    assert reference == pytest.approx(0.3815, abs=1e-3)
    job = make_job(params, "etth1", "linear_ls", 0, feats, threads=1)
    assert forecast_input(job.settings).instance_norm == "none" and job.config.train_stride == 1
    result = fit_task(job, feats.tasks["h96"]).result
    assert result["test"]["mse"] == pytest.approx(reference, abs=1e-4)
    assert result["closed_form"]["ridge"] == 0.0 and result["epochs"] == 0
    assert len(windows.window_starts(feats.tasks["h96"], feats.splits["test"], len(series))) == 2785
