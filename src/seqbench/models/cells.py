"""LSTM recurrence with a recurrent-dropout mask (Gal & Ghahramani 2016), fast on CPU.

nn.LSTM cannot multiply h by a mask between steps, so lstm_dropout trains with this recurrence:
the input projections of all steps are one matmul, and the step loop runs inside an
autograd.Function with a hand-written backward (BPTT), so autograd records one node per sequence
instead of ~10 per step; buffers are time-major and preallocated (no per-step stacking), and the
W_hh gradient is one matmul over all steps. Inside, gates are ordered [i, f, o, g] so the three
sigmoids are one slice; the public function takes nn.LSTM's weights ([i, f, g, o]) unchanged.
bench/lstm_dropout_speed.py times it against nn.LSTM.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor


def _forward_loop(xw: Tensor, w_hh: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """xw (T, B, 4H) input projections + biases, gates [i, f, o, g]; w_hh (4H, H); mask (B, H).

    Returns hs (T, B, H), act (T, B, 4H) activated gates, cs (T, B, H) cells, tcs = tanh(cs).
    """
    steps, batch, four_h = xw.shape
    hidden = four_h // 4
    w_t = w_hh.t()
    act = torch.empty_like(xw)
    cs = xw.new_empty(steps, batch, hidden)
    tcs = torch.empty_like(cs)
    hs = torch.empty_like(cs)
    h_masked = xw.new_zeros(batch, hidden)
    c = xw.new_zeros(batch, hidden)
    for t in range(steps):
        a = act[t]
        torch.addmm(xw[t], h_masked, w_t, out=a)
        a[:, : 3 * hidden].sigmoid_()
        a[:, 3 * hidden :].tanh_()
        c_new = cs[t]
        torch.mul(a[:, hidden : 2 * hidden], c, out=c_new)
        c_new.addcmul_(a[:, :hidden], a[:, 3 * hidden :])
        torch.tanh(c_new, out=tcs[t])
        torch.mul(a[:, 2 * hidden : 3 * hidden], tcs[t], out=hs[t])
        h_masked = hs[t] * mask
        c = c_new
    return hs, act, cs, tcs


def _backward_loop(grad_hs: Tensor, factors: Tensor, o_dtanh: Tensor, forget: Tensor,
                   w_hh: Tensor, mask: Tensor) -> Tensor:
    """grad_hs (T, B, H); factors (T, B, 4H): d pre-activation of gate [i, f, o, g] per unit of
    (dc, dc, dh, dc); o_dtanh (T, B, H) = o * (1 - tanh(c)^2); forget (T, B, H).
    Returns the gradient of the pre-activations (T, B, 4H)."""
    steps, batch, hidden = grad_hs.shape
    dgates = factors.new_empty(steps, batch, 4 * hidden)
    dh_next = grad_hs.new_zeros(batch, hidden)
    dc_next = grad_hs.new_zeros(batch, hidden)
    for t in range(steps - 1, -1, -1):
        dh = grad_hs[t] + dh_next
        dc = torch.addcmul(dc_next, dh, o_dtanh[t])
        d = dgates[t].view(batch, 4, hidden)
        fa = factors[t].view(batch, 4, hidden)
        torch.mul(fa, dc.unsqueeze(1), out=d)
        torch.mul(fa[:, 2], dh, out=d[:, 2])  # the output gate takes dh, not dc
        dc_next = dc * forget[t]
        dh_next = torch.mm(dgates[t], w_hh).mul_(mask)
    return dgates


_PLAIN = (_forward_loop, _backward_loop)
_SCRIPTED: list = []


def _scripted_loops():
    """TorchScript takes the Python interpreter out of the step loops (a training step 1.2-1.5x
    faster than with the plain loops on a 2-core CPU; torch.compile of the loop did not finish
    compiling in 10 minutes). It is deprecated in recent torch, so any failure keeps the plain loops."""
    if not _SCRIPTED:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _SCRIPTED.extend([torch.jit.script(_forward_loop), torch.jit.script(_backward_loop)])
        except Exception:  # noqa: BLE001 - the plain loops compute the same thing
            _SCRIPTED.extend(_PLAIN)
    return tuple(_SCRIPTED)


_STATE = {"scripted": True}


def use_scripted_loops(enabled: bool) -> None:
    """Choose TorchScript (default) or plain Python loops (same numbers; for tests and benchmarks)."""
    _STATE["scripted"] = enabled


def _loops():
    return _scripted_loops() if _STATE["scripted"] else _PLAIN


class _MaskedLSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xw: Tensor, w_hh: Tensor, mask: Tensor) -> Tensor:
        forward_loop, backward_loop = _loops()
        hs, act, cs, tcs = forward_loop(xw, w_hh, mask)
        ctx.backward_loop = backward_loop
        ctx.save_for_backward(w_hh, mask, hs, act, cs, tcs)
        return hs

    @staticmethod
    def backward(ctx, grad_hs: Tensor):
        w_hh, mask, hs, act, cs, tcs = ctx.saved_tensors
        hidden = hs.shape[-1]
        i, f, o, g = act.split(hidden, dim=-1)
        sig = act[..., : 3 * hidden]
        sig_grad = sig * (1 - sig)
        c_prev = torch.cat([torch.zeros_like(cs[:1]), cs[:-1]], 0)
        factors = torch.cat(
            [g * sig_grad[..., :hidden], c_prev * sig_grad[..., hidden : 2 * hidden],
             tcs * sig_grad[..., 2 * hidden :], i * (1 - g * g)], -1)  # (T, B, 4H)
        o_dtanh = o * (1 - tcs * tcs)
        dgates = ctx.backward_loop(grad_hs.contiguous(), factors, o_dtanh, f.contiguous(), w_hh, mask)
        h_prev = torch.cat([torch.zeros_like(hs[:1]), hs[:-1]], 0) * mask  # what W_hh saw
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
