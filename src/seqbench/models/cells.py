"""Hand-written CPU recurrences with their own backward (BPTT), fast where ATen has no fused kernel.

- `masked_lstm`: LSTM with a recurrent-dropout mask (Gal & Ghahramani 2016). nn.LSTM cannot multiply
  h by a mask between steps. Inside, gates are ordered [i, f, o, g] so the three sigmoids are one
  slice; the public function takes nn.LSTM's weights ([i, f, g, o]) unchanged.
- `GRU`: nn.GRU whose CPU training path runs `gru_sequence`. ATen's CPU GRU is a per-step cell under
  autograd (~10 recorded ops per step, as many again in backward; oneDNN's RNN has no GRU here).
- `RNN`: nn.RNN (tanh) whose CPU training path runs `rnn_sequence`, for the same reason (ATen's
  mkldnn_rnn_layer accepts LSTMs only).

The loops share one layout: the input projections of all steps are one matmul, the step loop runs
inside an autograd.Function (one autograd node per sequence instead of ~10 per step), buffers are
time-major and preallocated (no per-step stacking), and the W_hh gradient is one matmul over all steps.
The step loops exist three times, computing the same thing: in C++ (cells.cpp: one GEMM and one fused
pass over the elements per step; the default, built on first use), in TorchScript (where no C++
compiler is available) and as the plain Python below (their definition). `use_loops` chooses.
bench/lstm_dropout_speed.py times masked_lstm against nn.LSTM; bench/peers.py times both.
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


def _masked_lstm_forward(xw: Tensor, w_hh: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """xw (T, B, 4H) input projections + biases, gates [i, f, o, g]; w_hh (4H, H); mask (B, H).

    Returns hs (T + 1, B, H) and cs (T + 1, B, H) (zero state first: each step's inputs and outputs
    are views of one buffer), act (T, B, 4H) activated gates, tcs (T, B, H) = tanh(c)."""
    steps, batch, four_h = xw.shape
    hidden = four_h // 4
    w_t = w_hh.t()
    act = torch.empty_like(xw)
    hs = xw.new_empty(steps + 1, batch, hidden)
    cs = torch.empty_like(hs)
    tcs = xw.new_empty(steps, batch, hidden)
    hs[0].zero_()
    cs[0].zero_()
    h_masked = hs[0]
    for t in range(steps):
        a = act[t]
        torch.addmm(xw[t], h_masked, w_t, out=a)
        a[:, : 3 * hidden].sigmoid_()
        a[:, 3 * hidden :].tanh_()
        c = cs[t + 1]
        torch.mul(a[:, hidden : 2 * hidden], cs[t], out=c)
        c.addcmul_(a[:, :hidden], a[:, 3 * hidden :])
        torch.tanh(c, out=tcs[t])
        torch.mul(a[:, 2 * hidden : 3 * hidden], tcs[t], out=hs[t + 1])
        h_masked = hs[t + 1] * mask
    return hs, cs, act, tcs


def _masked_lstm_backward(grad_hs: Tensor, cs: Tensor, act: Tensor, tcs: Tensor, w_hh: Tensor, mask: Tensor,
                          block: int) -> Tensor:
    """grad_hs (T, B, H); the forward loop's outputs; w_hh (4H, H); mask (B, H); `block` steps at a time.

    Returns the gradient of the pre-activations (T, B, 4H). The local derivatives are computed for
    `block` steps at once, just before the step loop uses them (see `_gru_backward`)."""
    steps, batch, hidden = grad_hs.shape
    dgates = act.new_empty(steps, batch, 4 * hidden)
    dh_next = grad_hs.new_zeros(batch, hidden)
    dc_next = grad_hs.new_zeros(batch, hidden)
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
            dh_next = torch.mm(dgates[t], w_hh).mul_(mask)
    return dgates


LOOP_KINDS = ("compiled", "scripted", "python")
_STATE = {"loops": "compiled"}
_SCRIPTED: dict[str, tuple] = {}
_COMPILED: dict[str, object] = {}
_SOURCE = Path(__file__).with_name("cells.cpp")
# -march=native: the library is built on the machine that runs it (its cache key names the CPU).
# -fno-trapping-math lets the compiler vectorize the selects in exp and tanh (no value changes).
_CFLAGS = ["-O3", "-march=native", "-fno-trapping-math"]


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
    key = hashlib.sha256(b"\0".join([_SOURCE.read_bytes(), " ".join(_CFLAGS).encode(), _cpu_signature().encode(),
                                      torch.__version__.encode(), str(Path(torch.__file__).resolve().parent).encode()]
                                     )).hexdigest()[:16]
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions")
    return root / f"seqbench_cells_{key}"


def _build_compiled_ops():
    from filelock import FileLock
    from torch.utils import cpp_extension

    build_dir = compiled_build_dir()
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(build_dir / "seqbench.lock"):  # released by the OS if its holder dies
            # torch's own build baton: a process killed mid-build leaves it behind, and every later
            # build would wait for it forever. Under our lock nobody else is building.
            (build_dir / "lock").unlink(missing_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cpp_extension.load(build_dir.name, [str(_SOURCE)], extra_cflags=_CFLAGS,
                                   build_directory=str(build_dir), is_python_module=False, verbose=False)
    except Exception as exc:  # noqa: BLE001 - any build failure keeps the TorchScript loops
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = " | ".join([line for line in lines if "error" in line.lower()][:3] or lines[-1:])
        warnings.warn(f"seqbench: the C++ step loops ({_SOURCE}) could not be built in {build_dir} "
                      f"({type(exc).__name__}: {reason}); training uses the TorchScript loops (the same "
                      "recurrences, equal to rounding, and slower). Install a C++ compiler and ninja to get them.", stacklevel=3)
        return None
    return torch.ops.seqbench_cells


def _loops(cell: str) -> tuple:
    """(forward, backward) step loops of `cell` ("masked_lstm", "gru" or "rnn") for `use_loops`' choice.

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


class _MaskedLSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xw: Tensor, w_hh: Tensor, mask: Tensor) -> Tensor:
        forward_loop, backward_loop = _loops("masked_lstm")
        hs, cs, act, tcs = forward_loop(xw, w_hh, mask)
        ctx.backward_loop = backward_loop
        ctx.save_for_backward(w_hh, mask, hs, cs, act, tcs)
        return hs[1:]

    @staticmethod
    def backward(ctx, grad_hs: Tensor):
        w_hh, mask, hs, cs, act, tcs = ctx.saved_tensors
        block = max(1, BLOCK_ELEMENTS // act[0].numel())
        dgates = ctx.backward_loop(grad_hs.contiguous(), cs, act, tcs, w_hh, mask, block)
        h_prev = hs[:-1] * mask  # what W_hh saw
        grad_w_hh = dgates.flatten(0, 1).t().mm(h_prev.flatten(0, 1))  # (4H, H)
        return dgates, grad_w_hh, None


def _ifog(hidden: int, device) -> Tensor:
    """Row order taking nn.LSTM's [i, f, g, o] gate blocks to [i, f, o, g]."""
    return torch.arange(4 * hidden, device=device).view(4, hidden)[[0, 1, 3, 2]].flatten()


def masked_lstm(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, mask: Tensor) -> Tensor:
    """One-layer LSTM from a zero state, h multiplied by `mask` (B, H) before every recurrent matmul
    (the same mask at every step). nn.LSTM weights; x (B, T, F) -> hidden states (B, T, H), unmasked."""
    hidden = w_hh.shape[1]
    rows = _ifog(hidden, x.device)
    # The loops write into preallocated buffers (out=), which autocast cannot retype: run in the
    # weights' dtype, as cuDNN does for its recurrences.
    with torch.autocast(x.device.type, enabled=False):
        x_tm = x.transpose(0, 1).reshape(-1, x.shape[-1]).to(w_ih.dtype)  # (T*B, F), time-major
        xw = torch.addmm((b_ih + b_hh)[rows], x_tm, w_ih[rows].t()).view(x.shape[1], x.shape[0], 4 * hidden)
        return _MaskedLSTM.apply(xw, w_hh[rows], mask.to(xw.dtype)).transpose(0, 1)


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
def _gru_forward(xw: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """xw (T, B, 3H); w_hh (3H, H); b_hh (3H); h0 (B, H).

    Returns hs (T + 1, B, H) (h0 first: the steps' inputs and outputs are views of one buffer),
    rz (T, B, 2H) activated r and z, ns (T, B, H), hws (T, B, 3H)."""
    steps, batch, three_h = xw.shape
    hidden = three_h // 3
    w_t = w_hh.t()
    hs = xw.new_empty(steps + 1, batch, hidden)
    hs[0] = h0
    hws = torch.empty_like(xw)
    rz = xw.new_empty(steps, batch, 2 * hidden)
    ns = xw.new_empty(steps, batch, hidden)
    for t in range(steps):
        h = hs[t]
        hw = hws[t]
        torch.addmm(b_hh, h, w_t, out=hw)
        gates = rz[t]
        torch.add(xw[t, :, : 2 * hidden], hw[:, : 2 * hidden], out=gates)
        gates.sigmoid_()
        n = ns[t]
        torch.addcmul(xw[t, :, 2 * hidden :], gates[:, :hidden], hw[:, 2 * hidden :], out=n)
        n.tanh_()
        torch.lerp(n, h, gates[:, hidden:], out=hs[t + 1])  # n + z * (h - n)
    return hs, rz, ns, hws


def _gru_backward(grad_hs: Tensor, hs: Tensor, rz: Tensor, ns: Tensor, hws: Tensor, w_hh: Tensor,
                  block: int) -> tuple[Tensor, Tensor, Tensor]:
    """grad_hs (T, B, H); the forward loop's outputs; w_hh (3H, H); `block` steps at a time.

    Returns d hw (T, B, 3H) (the gradient at h W_hh^T + b_hh), d n-pre-activation (T, B, H) and
    d h0 (B, H). The local derivatives are computed for `block` steps at once, just before the step
    loop uses them: a few ops per block rather than per step (small batches: per-op overhead), and
    in cache rather than in whole-sequence passes (large batches: memory-bound)."""
    steps, batch, hidden = grad_hs.shape
    d_hw = hws.new_empty(steps, batch, 3 * hidden)
    d_npre = torch.empty_like(grad_hs)
    dh_next = grad_hs.new_zeros(batch, hidden)
    for end in range(steps, 0, -block):
        start = max(0, end - block)
        r = rz[start:end, :, :hidden]
        z = rz[start:end, :, hidden:]
        n = ns[start:end]
        dn = (1 - z) * (1 - n * n)  # d n-pre-activation / dh'
        factors = torch.cat([dn * hws[start:end, :, 2 * hidden :] * (r - r * r),  # r acts through r * hw_n
                             (hs[start:end] - n) * (z - z * z),  # z: dh' / dz = h - n
                             dn * r], -1)  # (block, B, 3H): d hw / dh' per gate block [r, z, n]
        for t in range(end - 1, start - 1, -1):
            i = t - start
            dh = grad_hs[t] + dh_next
            torch.mul(factors[i], dh.repeat(1, 3), out=d_hw[t])  # repeat: a broadcast mul was 5x slower
            torch.mul(dh, dn[i], out=d_npre[t])
            dh_next = torch.addmm(dh * z[i], d_hw[t], w_hh)
    return d_hw, d_npre, dh_next


class _GRUSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xw: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor) -> Tensor:
        forward_loop, backward_loop = _loops("gru")
        hs, rz, ns, hws = forward_loop(xw, w_hh, b_hh, h0)
        ctx.backward_loop = backward_loop
        ctx.save_for_backward(w_hh, hs, rz, ns, hws)
        return hs[1:]

    @staticmethod
    def backward(ctx, grad_hs: Tensor):
        w_hh, hs, rz, ns, hws = ctx.saved_tensors
        block = max(1, BLOCK_ELEMENTS // hws[0].numel())
        d_hw, d_npre, grad_h0 = ctx.backward_loop(grad_hs.contiguous(), hs, rz, ns, hws, w_hh, block)
        flat = d_hw.flatten(0, 1)
        grad_w_hh, grad_b_hh = flat.t().mm(hs[:-1].flatten(0, 1)), flat.sum(0)
        # r and z pre-activations see xw + hw alike; n's sees xw directly: reuse the buffer for d xw.
        d_hw[..., 2 * hs.shape[-1] :] = d_npre
        return d_hw, grad_w_hh, grad_b_hh, grad_h0


def gru_sequence(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, h0: Tensor) -> Tensor:
    """One GRU layer over a time-major sequence: x (T, B, F), h0 (B, H) -> hidden states (T, B, H)."""
    steps, batch, _ = x.shape
    xw = torch.addmm(b_ih, x.reshape(steps * batch, -1), w_ih.t()).view(steps, batch, -1)
    return _GRUSequence.apply(xw, w_hh, b_hh, h0)


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


def _rnn_backward(grad_hs: Tensor, hs: Tensor, w_hh: Tensor) -> tuple[Tensor, Tensor]:
    """grad_hs (T, B, H); hs (T + 1, B, H) from the forward loop; w_hh (H, H).

    Returns the gradient of the pre-activations (T, B, H) and d h0 (B, H)."""
    steps, batch, hidden = grad_hs.shape
    dtanh = 1 - hs[1:] * hs[1:]  # (T, B, H): one op for all steps
    d_pre = torch.empty_like(grad_hs)
    dh_next = grad_hs.new_zeros(batch, hidden)
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
        ctx.save_for_backward(w_hh, hs)
        return hs[1:]

    @staticmethod
    def backward(ctx, grad_hs: Tensor):
        w_hh, hs = ctx.saved_tensors
        d_pre, grad_h0 = ctx.backward_loop(grad_hs.contiguous(), hs, w_hh)
        flat = d_pre.flatten(0, 1)  # xw and h W_hh^T + b_hh enter the pre-activation alike
        return d_pre, flat.t().mm(hs[:-1].flatten(0, 1)), flat.sum(0), grad_h0


def rnn_sequence(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, h0: Tensor) -> Tensor:
    """One tanh RNN layer over a time-major sequence: x (T, B, F), h0 (B, H) -> hidden states (T, B, H)."""
    steps, batch, _ = x.shape
    xw = torch.addmm(b_ih, x.reshape(steps * batch, -1), w_ih.t()).view(steps, batch, -1)
    return _RNNSequence.apply(xw, w_hh, b_hh, h0)


# cell -> (forward loop, backward loop, whether the backward loop takes `block`)
_PYTHON_LOOPS = {"masked_lstm": (_masked_lstm_forward, _masked_lstm_backward, True),
                 "gru": (_gru_forward, _gru_backward, True),
                 "rnn": (_rnn_forward, _rnn_backward, False)}


def _own_loops_apply(module: nn.RNNBase, inputs, hx) -> bool:
    """Whether a GRU/RNN call trains through the loops here: CPU training of an unpacked batch from a
    zero state, one direction, with biases, outside autocast."""
    return (torch.is_grad_enabled() and hx is None and not module.bidirectional and module.bias
            and isinstance(inputs, Tensor) and inputs.dim() == 3 and inputs.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu"))


def _stacked_layers(module: nn.RNNBase, inputs: Tensor, sequence) -> tuple[Tensor, Tensor]:
    """module's layers, each through `sequence` -> (output like nn.RNNBase's, h_n (layers, B, H))."""
    # Time-major like ATen, so the inter-layer dropout masks are drawn over the same (T, B, H)
    # layout from the same generator: same seed -> the same masks as nn.GRU / nn.RNN.
    x = inputs.transpose(0, 1) if module.batch_first else inputs
    h0 = x.new_zeros(x.shape[1], module.hidden_size)
    finals = []
    for layer in range(module.num_layers):
        if layer > 0 and module.dropout > 0 and module.training:
            x = F.dropout(x, module.dropout, training=True)
        weights = [getattr(module, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        x = sequence(x.contiguous(), *weights, h0)
        finals.append(x[-1])
    return (x.transpose(0, 1) if module.batch_first else x), torch.stack(finals)


class GRU(nn.GRU):
    """nn.GRU (same parameters, state dict and numbers) that trains on CPU through `gru_sequence`:
    six ops per step in forward and in backward, no autograd per step, TorchScript loops. Everywhere
    else (CUDA's cuDNN, inference, packed or bidirectional input, a given state) it is nn.GRU."""

    def forward(self, input, hx=None):  # noqa: A002 - nn.GRU's signature
        if not _own_loops_apply(self, input, hx):
            return super().forward(input, hx)
        return _stacked_layers(self, input, gru_sequence)


class RNN(nn.RNN):
    """nn.RNN (same parameters, state dict and numbers) that trains on CPU through `rnn_sequence`
    when its nonlinearity is tanh: three ops per step in forward and in backward, no autograd per
    step. Everywhere else it is nn.RNN, as `GRU` is nn.GRU."""

    def forward(self, input, hx=None):  # noqa: A002 - nn.RNN's signature
        if self.nonlinearity != "tanh" or not _own_loops_apply(self, input, hx):
            return super().forward(input, hx)
        return _stacked_layers(self, input, rnn_sequence)
