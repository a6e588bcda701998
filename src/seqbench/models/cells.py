"""Hand-written CPU recurrences with their own backward (BPTT), faster than ATen's on CPU.

- `LSTM`: nn.LSTM whose CPU training path runs `lstm_sequence`; `masked_lstm` is the same layer with
  a recurrent-dropout mask (Gal & Ghahramani 2016), which nn.LSTM cannot apply between steps. Inside,
  gates are ordered [i, f, o, g] so the three sigmoids are one slice; the public functions take
  nn.LSTM's weights ([i, f, g, o]) unchanged.
- `GRU`: nn.GRU whose CPU training path runs `gru_sequence`. ATen's CPU GRU is a per-step cell under
  autograd (~10 recorded ops per step, as many again in backward; oneDNN's RNN has no GRU here).
- `RNN`: nn.RNN (tanh) whose CPU training path runs `rnn_sequence`, for the same reason (ATen's
  mkldnn_rnn_layer accepts LSTMs only).

Each layer's step loop runs inside an autograd.Function (one autograd node per sequence instead of ~10
per step), with time-major, preallocated buffers (no per-step stacking). The step loops exist three
times, computing the same thing: in C++ (cells.cpp, the default, built on first use), in TorchScript
(where no C++ compiler is available) and as the plain Python below (their definition); `use_loops`
chooses. The C++ loops run each of torch's threads over its own rows of the batch, and the LSTM and
GRU loops also take the input projection and the weight gradients into the step loop (one small GEMM
each per step, on data in cache), where the Python loops make them one matmul over all steps.
bench/lstm_dropout_speed.py times masked_lstm against nn.LSTM; bench/peers.py times all of them.
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# Steps per block of local derivatives in the backward loops: a block's (block, B, gates x H) factors
# fill about 1 MiB of float32 (this machine's per-core L2 is 2 MiB).
BLOCK_ELEMENTS = 2**18


def _lstm_forward(x: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor,
                  mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """x (T, B, F) time-major; w_ih (4H, F), w_hh (4H, H), bias (4H), gates [i, f, o, g]; mask (B, H) or None.

    Returns hs (T + 1, B, H) and cs (T + 1, B, H) (zero state first: each step's inputs and outputs
    are views of one buffer), act (T, B, 4H) activated gates, tcs (T, B, H) = tanh(c)."""
    steps, batch, features = x.shape
    hidden = w_hh.shape[1]
    xw = x.reshape(steps * batch, features).mm(w_ih.t()).view(steps, batch, 4 * hidden)
    w_t = w_hh.t()
    act = torch.empty_like(xw)
    hs = x.new_empty(steps + 1, batch, hidden)
    cs = torch.empty_like(hs)
    tcs = x.new_empty(steps, batch, hidden)
    hs[0].zero_()
    cs[0].zero_()
    h_in = hs[0]
    for t in range(steps):
        a = act[t]
        torch.addmm(xw[t], h_in, w_t, out=a)
        a.add_(bias)
        a[:, : 3 * hidden].sigmoid_()
        a[:, 3 * hidden :].tanh_()
        c = cs[t + 1]
        torch.mul(a[:, hidden : 2 * hidden], cs[t], out=c)
        c.addcmul_(a[:, :hidden], a[:, 3 * hidden :])
        torch.tanh(c, out=tcs[t])
        torch.mul(a[:, 2 * hidden : 3 * hidden], tcs[t], out=hs[t + 1])
        h_in = hs[t + 1] * mask if mask is not None else hs[t + 1]
    return hs, cs, act, tcs


def _lstm_backward(grad_hs: Tensor, grad_h: Tensor, grad_c: Tensor, x: Tensor, w_ih: Tensor, w_hh: Tensor,
                   mask: Tensor | None, hs: Tensor, cs: Tensor, act: Tensor, tcs: Tensor, need_dx: bool,
                   block: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """grad_hs (T, B, H), grad_h and grad_c (B, H), at the outputs and the last hidden and cell state;
    x and the weights as in `_lstm_forward`, then its outputs; `block` steps at a time.

    Returns d x (T, B, F) (empty unless need_dx), d w_ih (4H, F), d w_hh (4H, H), d bias (4H). The local
    derivatives are computed for `block` steps at once, just before the step loop uses them (see
    `_gru_backward`)."""
    steps, batch, hidden = grad_hs.shape
    dgates = act.new_empty(steps, batch, 4 * hidden)
    dh_next = grad_h
    dc_next = grad_c
    for end in range(steps, 0, -block):
        start = max(0, end - block)
        a = act[start:end]
        sig = a[..., : 3 * hidden]
        sig_grad = sig - sig * sig
        i, f, o, g = a.split(hidden, dim=-1)
        tc = tcs[start:end]
        # d pre-activation of gate [i, f, o, g] per unit of (dc, dc, dh, dc): (block, B, 4H)
        factors = torch.cat([g * sig_grad[..., :hidden], cs[start:end] * sig_grad[..., hidden : 2 * hidden],
                             tc * sig_grad[..., 2 * hidden :], i * (1 - g * g)], -1)
        o_dtanh = o * (1 - tc * tc)
        for t in range(end - 1, start - 1, -1):
            k = t - start
            dh = grad_hs[t] + dh_next
            dc = torch.addcmul(dc_next, dh, o_dtanh[k])
            torch.mul(factors[k], torch.cat([dc, dc, dh, dc], 1), out=dgates[t])  # the output gate takes dh
            dc_next = dc * f[k]
            dh_next = torch.mm(dgates[t], w_hh)
            if mask is not None:
                dh_next = dh_next * mask
    flat = dgates.flatten(0, 1)
    h_in = hs[:-1] * mask if mask is not None else hs[:-1]  # what W_hh saw
    x_flat = x.reshape(steps * batch, x.shape[-1])
    dx = flat.mm(w_ih).view(steps, batch, -1) if need_dx else x.new_empty(0)
    return dx, flat.t().mm(x_flat), flat.t().mm(h_in.flatten(0, 1)), flat.sum(0)


LOOP_KINDS = ("compiled", "scripted", "python")
_STATE = {"loops": "compiled"}
_SCRIPTED: dict[str, tuple] = {}
_COMPILED: dict[str, object] = {}
_SOURCE = Path(__file__).with_name("cells.cpp")
# -march=native: the library is built on the machine that runs it (its cache key names the CPU).
# -fno-trapping-math lets the compiler vectorize the selects in exp and tanh (no value changes).
# -fopenmp: at::parallel_for splits the batch over torch's threads only in code built with OpenMP (it
# then shares torch's OpenMP runtime, loaded under the same name); where the compiler has no OpenMP,
# the library is built without it and runs each batch on one thread.
_CFLAGS = ["-O3", "-march=native", "-fno-trapping-math"]
_OPENMP_FLAGS = ["-fopenmp"]


def use_loops(kind: str) -> None:
    """Choose the step loops: "compiled" (C++, the default; TorchScript where it cannot be built),
    "scripted" (TorchScript; plain Python where scripting fails) or "python". All compute the same
    recurrence: the same numbers in float64, float32 within rounding (C++'s exp and tanh are 1-2 ulp
    approximations that vectorize)."""
    if kind not in LOOP_KINDS:
        raise ValueError(f"step loops {kind!r}: choose one of {', '.join(LOOP_KINDS)}")
    _STATE["loops"] = kind


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return next((line for line in cpuinfo if line.startswith("flags")), platform.machine())
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def compiled_ops():
    """torch.ops.seqbench_cells, built from cells.cpp on first use, or None where it cannot be built
    (no C++ compiler or ninja; a warning says why, and the TorchScript loops run instead).

    The build (10-20 s on 2 cores) is cached on disk under torch's extensions folder
    ($TORCH_EXTENSIONS_DIR, default ~/.cache/torch_extensions), keyed by the source, flags, CPU and torch
    version: later processes load it in milliseconds, and parallel training jobs wait for one build."""
    if "ops" not in _COMPILED:
        _COMPILED["ops"] = _build_compiled_ops()
    return _COMPILED["ops"]


def compiled_build_dir() -> Path:
    """Where the C++ loops of this source, flags, CPU and torch install are built and cached.

    The torch install's location is part of the key: two environments (the project's and bench-peers')
    linking the same cache folder against different libtorch copies would rebuild it in turn."""
    key = hashlib.sha256(b"\0".join([_SOURCE.read_bytes(), " ".join(_CFLAGS + _OPENMP_FLAGS).encode(), _cpu_signature().encode(),
                                      torch.__version__.encode(), str(Path(torch.__file__).resolve().parent).encode()]
                                     )).hexdigest()[:16]
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions")
    return root / f"seqbench_cells_{key}"


def _build_compiled_ops():
    from filelock import FileLock
    from torch.utils import cpp_extension

    build_dir = compiled_build_dir()
    error = None
    for openmp in (_OPENMP_FLAGS, []):
        try:
            build_dir.mkdir(parents=True, exist_ok=True)
            with FileLock(build_dir / "seqbench.lock"):  # released by the OS if its holder dies
                # torch's own build baton: a process killed mid-build leaves it behind, and every later
                # build would wait for it forever. Under our lock nobody else is building.
                (build_dir / "lock").unlink(missing_ok=True)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cpp_extension.load(build_dir.name, [str(_SOURCE)], extra_cflags=_CFLAGS + openmp,
                                       extra_ldflags=openmp, build_directory=str(build_dir), is_python_module=False,
                                       verbose=False)
            return torch.ops.seqbench_cells
        except Exception as exc:  # noqa: BLE001 - any build failure keeps the TorchScript loops
            error = exc
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = " | ".join([line for line in lines if "error" in line.lower()][:3] or lines[-1:])
    warnings.warn(f"seqbench: the C++ step loops ({_SOURCE}) could not be built in {build_dir} "
                  f"({type(error).__name__}: {reason}); training uses the TorchScript loops (the same "
                  "recurrences, equal to rounding, and slower). Install a C++ compiler and ninja to get them.", stacklevel=3)
    return None


def _loops(cell: str) -> tuple:
    """(forward, backward) step loops of `cell` ("lstm", "gru" or "rnn") for `use_loops`' choice.

    The backward loops take the Python loops' arguments, `block` included where they have one."""
    forward_loop, backward_loop, takes_block = _PYTHON_LOOPS[cell]
    kind = _STATE["loops"]
    if kind == "compiled":
        ops = compiled_ops()
        if ops is not None:
            forward, backward = getattr(ops, f"{cell}_forward"), getattr(ops, f"{cell}_backward")
            if takes_block:  # the fused pass computes each step's local derivatives in place: no blocks
                return forward, lambda *args: backward(*args[:-1])
            return forward, backward
        kind = "scripted"
    if kind == "python":
        return forward_loop, backward_loop
    if cell not in _SCRIPTED:
        _SCRIPTED[cell] = _scripted(forward_loop, backward_loop)
    return _SCRIPTED[cell]


def _scripted(forward_loop, backward_loop) -> tuple:
    """TorchScript takes the Python interpreter out of the step loops (a masked-LSTM training step
    1.2-1.5x faster than with the plain loops on a 2-core CPU; torch.compile of the loop did not
    finish compiling in 10 minutes). It is deprecated in recent torch, so any failure keeps the plain
    loops, which compute the same thing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.script(forward_loop), torch.jit.script(backward_loop)
    except Exception:  # noqa: BLE001 - see the docstring
        return forward_loop, backward_loop


def _rows_contiguous(t: Tensor) -> Tensor:
    """t (T, B, N), copied only if a row's N elements are not contiguous: the C++ loops take any step
    and row strides, so a batch-first input and its gradient need no time-major copy."""
    if t.stride(-1) == 1:
        return t
    if t.shape[-1] == 1:  # a one-element row is contiguous whatever its stride says: restate it, no copy
        return t.squeeze(-1).unsqueeze(-1)
    return t.contiguous()


def _state_gradients(hs: Tensor, grad_hs: Tensor | None, *grad_states: Tensor | None) -> tuple[Tensor, ...]:
    """The gradients at a layer's outputs (T, B, H) and at its final states (B, H) each, zeros where
    autograd passed None (an output the model does not use; the layers set_materialize_grads(False)).
    hs (T + 1, B, H) from the forward loop. A forecaster reading only the final state then costs no
    (T, B, H) zero fill: its output gradient is one zero row seen through zero strides."""
    steps, batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    outputs = (hs.new_zeros(1, 1, hidden).expand(steps, batch, hidden) if grad_hs is None
               else _rows_contiguous(grad_hs))
    states = tuple(hs.new_zeros(batch, hidden) if grad is None else grad.contiguous() for grad in grad_states)
    return (outputs, *states)


class _LSTMLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor, mask: Tensor | None):
        forward_loop, backward_loop = _loops("lstm")
        hs, cs, act, tcs = forward_loop(x, w_ih, w_hh, bias, mask)
        ctx.backward_loop = backward_loop
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, w_ih, w_hh, mask, hs, cs, act, tcs)
        return hs[1:], hs[-1].clone(), cs[-1]

    @staticmethod
    def backward(ctx, grad_hs: Tensor | None, grad_h: Tensor | None, grad_c: Tensor | None):
        x, w_ih, w_hh, mask, hs, cs, act, tcs = ctx.saved_tensors
        block = max(1, BLOCK_ELEMENTS // act[0].numel())
        dx, grad_w_ih, grad_w_hh, grad_bias = ctx.backward_loop(
            *_state_gradients(hs, grad_hs, grad_h, grad_c), x, w_ih, w_hh, mask, hs, cs, act, tcs,
            ctx.needs_input_grad[0], block)
        return dx if ctx.needs_input_grad[0] else None, grad_w_ih, grad_w_hh, grad_bias, None


def _ifog(hidden: int, device) -> Tensor:
    """Row order taking nn.LSTM's [i, f, g, o] gate blocks to [i, f, o, g]."""
    return torch.arange(4 * hidden, device=device).view(4, hidden)[[0, 1, 3, 2]].flatten()


def lstm_sequence(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                  mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM layer from a zero state over a time-major sequence, nn.LSTM's weights; with `mask` (B, H),
    h is multiplied by it before every recurrent matmul (the same mask at every step).
    x (T, B, F) -> (hidden states (T, B, H), unmasked; the last hidden state and cell state (B, H) each)."""
    rows = _ifog(w_hh.shape[1], x.device)
    # The loops write into preallocated buffers, which autocast cannot retype: run in the weights'
    # dtype, as cuDNN does for its recurrences.
    with torch.autocast(x.device.type, enabled=False):
        mask = None if mask is None else mask.to(w_ih.dtype)
        return _LSTMLayer.apply(_rows_contiguous(x.to(w_ih.dtype)), w_ih[rows], w_hh[rows], (b_ih + b_hh)[rows],
                                mask)


def masked_lstm(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                mask: Tensor) -> tuple[Tensor, Tensor]:
    """One-layer LSTM from a zero state, h multiplied by `mask` (B, H) before every recurrent matmul
    (the same mask at every step). nn.LSTM weights; x (B, T, F) -> (hidden states (B, T, H), unmasked;
    the last one (B, H), apart: reading only it costs no gradient for the others)."""
    hs, h_last, _ = lstm_sequence(x.transpose(0, 1), w_ih, w_hh, b_ih, b_hh, mask)
    return hs.transpose(0, 1), h_last


def reference_masked_lstm(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                          mask: Tensor) -> Tensor:
    """The same recurrence step by step under autograd: the definition, for tests and benchmarks."""
    hidden = w_hh.shape[1]
    h = x.new_zeros(x.shape[0], hidden)
    c = x.new_zeros(x.shape[0], hidden)
    out = []
    for t in range(x.shape[1]):
        gates = x[:, t] @ w_ih.t() + b_ih + (h * mask) @ w_hh.t() + b_hh
        i, f, g, o = gates.chunk(4, 1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        out.append(h)
    return torch.stack(out, 1)


# --- GRU -----------------------------------------------------------------------------------------
# nn.GRU's equations and weight layout (rows [r, z, n]):
#   r = sigmoid(xw_r + hw_r), z = sigmoid(xw_z + hw_z), n = tanh(xw_n + r * hw_n), h' = n + z * (h - n)
# with xw = x W_ih^T + b_ih and hw = h W_hh^T + b_hh.
def _gru_forward(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                 h0: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """x (T, B, F) time-major; w_ih (3H, F), w_hh (3H, H), b_ih and b_hh (3H); h0 (B, H).

    Returns hs (T + 1, B, H) (h0 first: the steps' inputs and outputs are views of one buffer),
    rz (T, B, 2H) activated r and z, ns (T, B, H), hw_n (T, B, H) = h W_hn^T + b_hn."""
    steps, batch, features = x.shape
    hidden = w_hh.shape[1]
    xw = torch.addmm(b_ih, x.reshape(steps * batch, features), w_ih.t()).view(steps, batch, 3 * hidden)
    w_t = w_hh.t()
    hs = x.new_empty(steps + 1, batch, hidden)
    hs[0] = h0
    hw = x.new_empty(batch, 3 * hidden)
    rz = x.new_empty(steps, batch, 2 * hidden)
    ns = x.new_empty(steps, batch, hidden)
    hw_n = x.new_empty(steps, batch, hidden)
    for t in range(steps):
        h = hs[t]
        torch.addmm(b_hh, h, w_t, out=hw)
        gates = rz[t]
        torch.add(xw[t, :, : 2 * hidden], hw[:, : 2 * hidden], out=gates)
        gates.sigmoid_()
        hw_n[t].copy_(hw[:, 2 * hidden :])
        n = ns[t]
        torch.addcmul(xw[t, :, 2 * hidden :], gates[:, :hidden], hw_n[t], out=n)
        n.tanh_()
        torch.lerp(n, h, gates[:, hidden:], out=hs[t + 1])  # n + z * (h - n)
    return hs, rz, ns, hw_n


def _gru_backward(grad_hs: Tensor, grad_h: Tensor, x: Tensor, w_ih: Tensor, w_hh: Tensor, hs: Tensor, rz: Tensor,
                  ns: Tensor, hw_n: Tensor, need_dx: bool, block: int) -> list[Tensor]:
    """grad_hs (T, B, H) and grad_h (B, H), at the outputs and the last state; x and the weights as in
    `_gru_forward`, then its outputs; `block` steps at a time.

    Returns d x (T, B, F) (empty unless need_dx), d w_ih (3H, F), d w_hh (3H, H), d b_ih, d b_hh (3H) and
    d h0 (B, H). The local derivatives are computed for `block` steps at once, just before the step
    loop uses them: a few ops per block rather than per step (small batches: per-op overhead), and
    in cache rather than in whole-sequence passes (large batches: memory-bound)."""
    steps, batch, hidden = grad_hs.shape
    d_hw = grad_hs.new_empty(steps, batch, 3 * hidden)
    d_npre = hs.new_empty(steps, batch, hidden)
    dh_next = grad_h
    for end in range(steps, 0, -block):
        start = max(0, end - block)
        r = rz[start:end, :, :hidden]
        z = rz[start:end, :, hidden:]
        n = ns[start:end]
        dn = (1 - z) * (1 - n * n)  # d n-pre-activation / dh'
        factors = torch.cat([dn * hw_n[start:end] * (r - r * r),  # r acts through r * hw_n
                             (hs[start:end] - n) * (z - z * z),  # z: dh' / dz = h - n
                             dn * r], -1)  # (block, B, 3H): d hw / dh' per gate block [r, z, n]
        for t in range(end - 1, start - 1, -1):
            i = t - start
            dh = grad_hs[t] + dh_next
            torch.mul(factors[i], dh.repeat(1, 3), out=d_hw[t])  # repeat: a broadcast mul was 5x slower
            torch.mul(dh, dn[i], out=d_npre[t])
            dh_next = torch.addmm(dh * z[i], d_hw[t], w_hh)
    d_xw = torch.cat([d_hw[..., : 2 * hidden], d_npre], -1)  # xw_n enters n alone, hw_n through r
    flat_hw, flat_xw = d_hw.flatten(0, 1), d_xw.flatten(0, 1)
    dx = flat_xw.mm(w_ih).view(steps, batch, -1) if need_dx else x.new_empty(0)
    return [dx, flat_xw.t().mm(x.reshape(steps * batch, x.shape[-1])), flat_hw.t().mm(hs[:-1].flatten(0, 1)),
            flat_xw.sum(0), flat_hw.sum(0), dh_next]


class _GRUSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, h0: Tensor) -> Tensor:
        forward_loop, backward_loop = _loops("gru")
        hs, rz, ns, hw_n = forward_loop(x, w_ih, w_hh, b_ih, b_hh, h0)
        ctx.backward_loop = backward_loop
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, w_ih, w_hh, hs, rz, ns, hw_n)
        return hs[1:], hs[-1].clone()

    @staticmethod
    def backward(ctx, grad_hs: Tensor | None, grad_h: Tensor | None):
        x, w_ih, w_hh, hs, rz, ns, hw_n = ctx.saved_tensors
        block = max(1, BLOCK_ELEMENTS // (3 * hw_n[0].numel()))
        dx, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, grad_h0 = ctx.backward_loop(
            *_state_gradients(hs, grad_hs, grad_h), x, w_ih, w_hh, hs, rz, ns, hw_n, ctx.needs_input_grad[0], block)
        return dx if ctx.needs_input_grad[0] else None, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, grad_h0


def gru_sequence(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                 h0: Tensor) -> tuple[Tensor, Tensor]:
    """One GRU layer over a time-major sequence: x (T, B, F), h0 (B, H) -> (hidden states (T, B, H),
    the last one (B, H))."""
    return _GRUSequence.apply(_rows_contiguous(x), w_ih, w_hh, b_ih, b_hh, h0)


# --- simple RNN (tanh) ---------------------------------------------------------------------------
# ATen's CPU step, in its order of operations: h' = tanh((h W_hh^T + b_hh) + xw), xw = x W_ih^T + b_ih.
def _rnn_forward(xw: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor) -> Tensor:
    """xw (T, B, H); w_hh (H, H); b_hh (H); h0 (B, H) -> hs (T + 1, B, H), h0 first."""
    steps, batch, hidden = xw.shape
    w_t = w_hh.t()
    hs = xw.new_empty(steps + 1, batch, hidden)
    hs[0] = h0
    for t in range(steps):
        h = hs[t + 1]
        torch.addmm(b_hh, hs[t], w_t, out=h)
        h.add_(xw[t])
        h.tanh_()
    return hs


def _rnn_backward(grad_hs: Tensor, grad_h: Tensor, hs: Tensor, w_hh: Tensor) -> tuple[Tensor, Tensor]:
    """grad_hs (T, B, H) and grad_h (B, H), at the outputs and the last state; hs (T + 1, B, H) from the
    forward loop; w_hh (H, H).

    Returns the gradient of the pre-activations (T, B, H) and d h0 (B, H)."""
    steps, batch, hidden = grad_hs.shape
    dtanh = 1 - hs[1:] * hs[1:]  # (T, B, H): one op for all steps
    d_pre = hs.new_empty(steps, batch, hidden)
    dh_next = grad_h
    for t in range(steps - 1, -1, -1):
        torch.mul(grad_hs[t] + dh_next, dtanh[t], out=d_pre[t])
        dh_next = torch.mm(d_pre[t], w_hh)
    return d_pre, dh_next


class _RNNSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xw: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor) -> Tensor:
        forward_loop, backward_loop = _loops("rnn")
        hs = forward_loop(xw, w_hh, b_hh, h0)
        ctx.backward_loop = backward_loop
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(w_hh, hs)
        return hs[1:], hs[-1].clone()

    @staticmethod
    def backward(ctx, grad_hs: Tensor | None, grad_h: Tensor | None):
        w_hh, hs = ctx.saved_tensors
        d_pre, grad_h0 = ctx.backward_loop(*_state_gradients(hs, grad_hs, grad_h), hs, w_hh)
        flat = d_pre.flatten(0, 1)  # xw and h W_hh^T + b_hh enter the pre-activation alike
        return d_pre, flat.t().mm(hs[:-1].flatten(0, 1)), flat.sum(0), grad_h0


def rnn_sequence(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                 h0: Tensor) -> tuple[Tensor, Tensor]:
    """One tanh RNN layer over a time-major sequence: x (T, B, F), h0 (B, H) -> (hidden states (T, B, H),
    the last one (B, H))."""
    steps, batch, _ = x.shape
    xw = torch.addmm(b_ih, x.reshape(steps * batch, -1), w_ih.t()).view(steps, batch, -1)
    return _RNNSequence.apply(xw, w_hh, b_hh, h0)


# cell -> (forward loop, backward loop, whether the backward loop takes `block`)
_PYTHON_LOOPS = {"lstm": (_lstm_forward, _lstm_backward, True),
                 "gru": (_gru_forward, _gru_backward, True),
                 "rnn": (_rnn_forward, _rnn_backward, False)}


def _own_loops_apply(module: nn.RNNBase, inputs, hx) -> bool:
    """Whether a call of an LSTM, GRU or RNN here trains through the loops here: CPU training of an
    unpacked batch from a zero state, one direction, with biases and float32 or float64 weights (the
    loops' types), outside autocast."""
    return (torch.is_grad_enabled() and hx is None and not module.bidirectional and module.bias
            and not getattr(module, "proj_size", 0) and module.weight_hh_l0.dtype in (torch.float32, torch.float64)
            and isinstance(inputs, Tensor) and inputs.dim() == 3 and inputs.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu"))


def _stacked_layers(module: nn.RNNBase, inputs: Tensor, sequence) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """module's layers, each through `sequence(x, w_ih, w_hh, b_ih, b_hh)` -> (its outputs (T, B, H), its last
    output (B, H), a final cell state or None) -> (output like nn.RNNBase's, last outputs of each layer,
    final cell states of each layer)."""
    # Time-major like ATen, so the inter-layer dropout masks are drawn over the same (T, B, H)
    # layout from the same generator: same seed -> the same masks as nn.GRU / nn.RNN / nn.LSTM.
    x = inputs.transpose(0, 1) if module.batch_first else inputs
    last, states = [], []
    for layer in range(module.num_layers):
        if layer > 0 and module.dropout > 0 and module.training:
            x = F.dropout(x, module.dropout, training=True)
        weights = [getattr(module, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        x, h_last, state = sequence(x, *weights)
        last.append(h_last)
        states.append(state)
    return (x.transpose(0, 1) if module.batch_first else x), last, states


def _from_zero_state(sequence):
    """gru_sequence or rnn_sequence from a zero state, in _stacked_layers' form (no cell state)."""
    return lambda x, *weights: (*sequence(x, *weights, x.new_zeros(x.shape[1], weights[1].shape[1])), None)


class GRU(nn.GRU):
    """nn.GRU (same parameters, state dict and numbers) that trains on CPU through `gru_sequence`:
    one GEMM and one fused pass per step in forward and in backward, no autograd per step. Everywhere
    else (CUDA's cuDNN, inference, packed or bidirectional input, a given state) it is nn.GRU."""

    def forward(self, input, hx=None):  # noqa: A002 - nn.GRU's signature
        if not _own_loops_apply(self, input, hx):
            return super().forward(input, hx)
        output, last, _ = _stacked_layers(self, input, _from_zero_state(gru_sequence))
        return output, torch.stack(last)


class RNN(nn.RNN):
    """nn.RNN (same parameters, state dict and numbers) that trains on CPU through `rnn_sequence`
    when its nonlinearity is tanh: one GEMM and one fused pass per step in forward and in backward, no
    autograd per step. Everywhere else it is nn.RNN, as `GRU` is nn.GRU."""

    def forward(self, input, hx=None):  # noqa: A002 - nn.RNN's signature
        if self.nonlinearity != "tanh" or not _own_loops_apply(self, input, hx):
            return super().forward(input, hx)
        output, last, _ = _stacked_layers(self, input, _from_zero_state(rnn_sequence))
        return output, torch.stack(last)


class LSTM(nn.LSTM):
    """nn.LSTM (same parameters, state dict and numbers) that trains on CPU through `lstm_sequence`:
    per step one small GEMM ([x_t, h] by the stacked weights) and one fused pass, and in backward the
    weight gradients accumulate step by step. Each of torch's threads runs its own rows of the batch, where oneDNN's LSTM
    splits each step. Everywhere else (CUDA's cuDNN, inference, packed or bidirectional input, a given
    state, projections) it is nn.LSTM."""

    def forward(self, input, hx=None):  # noqa: A002 - nn.LSTM's signature
        if not _own_loops_apply(self, input, hx):
            return super().forward(input, hx)
        output, last, cells = _stacked_layers(self, input, lstm_sequence)
        return output, (torch.stack(last), torch.stack(cells))
