// The step loops of seqbench/models/cells.py in C++: per step one GEMM (ATen's) and one fused pass
// over the (B, H) elements, where the TorchScript loops run 6-8 ATen ops per step, each a separate pass
// with its own dispatch. Same signatures and buffers as the Python loops (cells.py documents them);
// float32 and float64. Built on first use by cells.compiled_loops() and cached on disk.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>

namespace {

// Vectorizable exp and tanh for float (Cephes' expf and tanhf algorithms, 1-2 ulp): std::exp and
// std::tanh are library calls the compiler cannot vectorize, and ATen's tanh costs ~2.6 ns per element
// on this CPU against ~0.5 ns for its sigmoid. float64 (the tests' reference dtype) uses std::.
inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : x;  // keeps 2^k a normal float (a NaN stays NaN)
  x = x > 88.0f ? 88.0f : x;
  const float shifted = x * 1.44269504088896341f + 127.5f;  // > 0 on that range: truncation = floor
  const int32_t k = static_cast<int32_t>(shifted) - 127;    // round(x / ln 2)
  const float n = static_cast<float>(k);
  float r = x - n * 0.693359375f;  // Cody-Waite: ln 2 in two parts
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (k + 127) << 23;  // 2^k
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline double exp_approx(double x) { return std::exp(x); }

inline float tanh_approx(float x) {
  const float a = std::fabs(x);
  const float e = exp_approx(2.0f * a);
  const float large = std::copysign(1.0f - 2.0f / (e + 1.0f), x);
  const float z = x * x;  // |x| < 0.625: odd polynomial, accurate where 1 - 2 / (e + 1) cancels
  const float small =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
       3.33332819422e-1f) * z * x + x;
  return a < 0.625f ? small : large;
}

inline double tanh_approx(double x) { return std::tanh(x); }

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + exp_approx(-x));
}

void check_cpu_contiguous(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), name, " must be a contiguous CPU tensor");
}

// The per-step element passes are separate noexcept functions on raw pointers: inside the dispatch
// lambdas (which hold tensors that may throw) the compiler does not vectorize them.

// --- GRU (nn.GRU's equations, rows [r, z, n]) ----------------------------------------------------
// r = sigmoid(xw_r + hw_r), z = sigmoid(xw_z + hw_z), n = tanh(xw_n + r * hw_n), h' = n + z * (h - n)
// with hw = h W_hh^T + b_hh; hw arrives without b_hh, which is added here (and stored, for backward).
template <typename T>
void gru_step(const T* __restrict__ xw, T* __restrict__ hw, const T* __restrict__ b_hh, const T* __restrict__ h,
              T* __restrict__ rz, T* __restrict__ n_out, T* __restrict__ h_next, int64_t batch,
              int64_t hidden) noexcept {
  for (int64_t b = 0; b < batch; ++b) {
    const T* xb = xw + b * 3 * hidden;
    T* hwb = hw + b * 3 * hidden;
    T* gb = rz + b * 2 * hidden;
    const int64_t o = b * hidden;
    for (int64_t k = 0; k < hidden; ++k) {
      const T hw_r = hwb[k] + b_hh[k], hw_z = hwb[hidden + k] + b_hh[hidden + k];
      const T hw_n = hwb[2 * hidden + k] + b_hh[2 * hidden + k];
      hwb[k] = hw_r;
      hwb[hidden + k] = hw_z;
      hwb[2 * hidden + k] = hw_n;
      const T r = sigmoid(xb[k] + hw_r);
      const T z = sigmoid(xb[hidden + k] + hw_z);
      const T n = tanh_approx(xb[2 * hidden + k] + r * hw_n);
      gb[k] = r;
      gb[hidden + k] = z;
      n_out[o + k] = n;
      h_next[o + k] = n + z * (h[o + k] - n);
    }
  }
}

// dh = grad + dh_next -> d hw (B, 3H) per gate block [r, z, n], d n-pre-activation; dh_next becomes
// dh * z (the direct path h -> h'), to which the caller adds d hw W_hh.
template <typename T>
void gru_step_backward(const T* __restrict__ grad, T* __restrict__ dh_next, const T* __restrict__ h,
                       const T* __restrict__ rz, const T* __restrict__ ns, const T* __restrict__ hw,
                       T* __restrict__ d_hw, T* __restrict__ d_npre, int64_t batch, int64_t hidden) noexcept {
  for (int64_t b = 0; b < batch; ++b) {
    const T* gb = rz + b * 2 * hidden;
    const T* hwb = hw + b * 3 * hidden;
    T* db = d_hw + b * 3 * hidden;
    const int64_t o = b * hidden;
    for (int64_t k = 0; k < hidden; ++k) {
      const T dh = grad[o + k] + dh_next[o + k];
      const T r = gb[k], z = gb[hidden + k], n = ns[o + k];
      const T dn = dh * (1 - z) * (1 - n * n);  // d n-pre-activation
      db[k] = dn * hwb[2 * hidden + k] * (r - r * r);  // r acts through r * hw_n
      db[hidden + k] = dh * (h[o + k] - n) * (z - z * z);  // dh' / dz = h - n
      db[2 * hidden + k] = dn * r;
      d_npre[o + k] = dn;
      dh_next[o + k] = dh * z;
    }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> gru_forward(const at::Tensor& xw, const at::Tensor& w_hh,
                                                                       const at::Tensor& b_hh, const at::Tensor& h0) {
  check_cpu_contiguous(xw, "xw");
  const int64_t steps = xw.size(0), batch = xw.size(1), hidden = xw.size(2) / 3;
  const at::Tensor w_t = w_hh.t().contiguous();  // (H, 3H)
  at::Tensor hs = at::empty({steps + 1, batch, hidden}, xw.options());
  hs[0].copy_(h0);
  at::Tensor hws = at::empty_like(xw);
  at::Tensor rz = at::empty({steps, batch, 2 * hidden}, xw.options());
  at::Tensor ns = at::empty({steps, batch, hidden}, xw.options());
  const at::Tensor bias = b_hh.contiguous();
  const int64_t h_size = batch * hidden;
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "gru_forward", [&] {
    const scalar_t* x = xw.data_ptr<scalar_t>();
    scalar_t* hw = hws.data_ptr<scalar_t>();
    scalar_t* h = hs.data_ptr<scalar_t>();
    scalar_t* gates = rz.data_ptr<scalar_t>();
    scalar_t* n = ns.data_ptr<scalar_t>();
    for (int64_t t = 0; t < steps; ++t) {
      at::Tensor hw_t = hws[t];
      at::mm_out(hw_t, hs[t], w_t);
      gru_step(x + t * 3 * h_size, hw + t * 3 * h_size, bias.data_ptr<scalar_t>(), h + t * h_size,
               gates + t * 2 * h_size, n + t * h_size, h + (t + 1) * h_size, batch, hidden);
    }
  });
  return {hs, rz, ns, hws};
}

// -> d hw (T, B, 3H) (the gradient at h W_hh^T + b_hh), d n-pre-activation (T, B, H), d h0 (B, H)
std::tuple<at::Tensor, at::Tensor, at::Tensor> gru_backward(const at::Tensor& grad_hs, const at::Tensor& hs,
                                                            const at::Tensor& rz, const at::Tensor& ns,
                                                            const at::Tensor& hws, const at::Tensor& w_hh) {
  check_cpu_contiguous(grad_hs, "grad_hs");
  const int64_t steps = grad_hs.size(0), batch = grad_hs.size(1), hidden = grad_hs.size(2);
  at::Tensor d_hw = at::empty_like(hws);
  at::Tensor d_npre = at::empty_like(grad_hs);
  at::Tensor dh_next = at::zeros({batch, hidden}, grad_hs.options());
  const int64_t h_size = batch * hidden;
  AT_DISPATCH_FLOATING_TYPES(grad_hs.scalar_type(), "gru_backward", [&] {
    const scalar_t* g = grad_hs.data_ptr<scalar_t>();
    const scalar_t* h = hs.data_ptr<scalar_t>();
    const scalar_t* gates = rz.data_ptr<scalar_t>();
    const scalar_t* n = ns.data_ptr<scalar_t>();
    const scalar_t* hw = hws.data_ptr<scalar_t>();
    scalar_t* dhw = d_hw.data_ptr<scalar_t>();
    scalar_t* dnp = d_npre.data_ptr<scalar_t>();
    for (int64_t t = steps - 1; t >= 0; --t) {
      gru_step_backward(g + t * h_size, dh_next.data_ptr<scalar_t>(), h + t * h_size, gates + t * 2 * h_size,
                        n + t * h_size, hw + t * 3 * h_size, dhw + t * 3 * h_size, dnp + t * h_size, batch, hidden);
      dh_next.addmm_(d_hw[t], w_hh);  // in place: no copy of dh * z
    }
  });
  return {d_hw, d_npre, dh_next};
}

// --- simple RNN (tanh): h' = tanh((h W_hh^T + b_hh) + xw) ----------------------------------------
// h (B, H) holds h_prev W_hh^T on entry
template <typename T>
void rnn_step(T* __restrict__ h, const T* __restrict__ b_hh, const T* __restrict__ xw, int64_t batch,
              int64_t hidden) noexcept {
  for (int64_t b = 0; b < batch; ++b) {
    T* hb = h + b * hidden;
    const T* xb = xw + b * hidden;
    for (int64_t k = 0; k < hidden; ++k) hb[k] = tanh_approx((hb[k] + b_hh[k]) + xb[k]);
  }
}

template <typename T>
void rnn_step_backward(const T* __restrict__ grad, const T* __restrict__ dh_next, const T* __restrict__ h,
                       T* __restrict__ d_pre, int64_t count) noexcept {
  for (int64_t i = 0; i < count; ++i) d_pre[i] = (grad[i] + dh_next[i]) * (1 - h[i] * h[i]);
}

at::Tensor rnn_forward(const at::Tensor& xw, const at::Tensor& w_hh, const at::Tensor& b_hh, const at::Tensor& h0) {
  check_cpu_contiguous(xw, "xw");
  const int64_t steps = xw.size(0), batch = xw.size(1), hidden = xw.size(2);
  const at::Tensor w_t = w_hh.t().contiguous();
  at::Tensor hs = at::empty({steps + 1, batch, hidden}, xw.options());
  hs[0].copy_(h0);
  const at::Tensor bias = b_hh.contiguous();
  const int64_t h_size = batch * hidden;
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnn_forward", [&] {
    const scalar_t* x = xw.data_ptr<scalar_t>();
    scalar_t* h = hs.data_ptr<scalar_t>();
    for (int64_t t = 0; t < steps; ++t) {
      at::Tensor h_t = hs[t + 1];
      at::mm_out(h_t, hs[t], w_t);
      rnn_step(h + (t + 1) * h_size, bias.data_ptr<scalar_t>(), x + t * h_size, batch, hidden);
    }
  });
  return hs;
}

// -> the gradient of the pre-activations (T, B, H) and d h0 (B, H)
std::tuple<at::Tensor, at::Tensor> rnn_backward(const at::Tensor& grad_hs, const at::Tensor& hs,
                                                const at::Tensor& w_hh) {
  check_cpu_contiguous(grad_hs, "grad_hs");
  const int64_t steps = grad_hs.size(0), batch = grad_hs.size(1), hidden = grad_hs.size(2);
  at::Tensor d_pre = at::empty_like(grad_hs);
  at::Tensor dh_next = at::zeros({batch, hidden}, grad_hs.options());
  const int64_t h_size = batch * hidden;
  AT_DISPATCH_FLOATING_TYPES(grad_hs.scalar_type(), "rnn_backward", [&] {
    const scalar_t* g = grad_hs.data_ptr<scalar_t>();
    const scalar_t* h = hs.data_ptr<scalar_t>();
    scalar_t* d = d_pre.data_ptr<scalar_t>();
    for (int64_t t = steps - 1; t >= 0; --t) {
      rnn_step_backward(g + t * h_size, dh_next.data_ptr<scalar_t>(), h + (t + 1) * h_size, d + t * h_size, h_size);
      at::mm_out(dh_next, d_pre[t], w_hh);
    }
  });
  return {d_pre, dh_next};
}

// --- LSTM with a recurrent-dropout mask, gates [i, f, o, g] ---------------------------------------
// a (B, 4H) = h_masked W_hh^T on entry, + xw -> activated in place; c = f c_prev + i g; h = o tanh(c);
// h_masked = h * mask
template <typename T>
void masked_lstm_step(T* __restrict__ a, const T* __restrict__ xw, const T* __restrict__ c_prev,
                      const T* __restrict__ mask,
                      T* __restrict__ c, T* __restrict__ tc, T* __restrict__ h, T* __restrict__ h_masked,
                      int64_t batch, int64_t hidden) noexcept {
  for (int64_t b = 0; b < batch; ++b) {
    T* ab = a + b * 4 * hidden;
    const T* xb = xw + b * 4 * hidden;
    const int64_t o = b * hidden;
    for (int64_t k = 0; k < hidden; ++k) {
      const T i = sigmoid(xb[k] + ab[k]), f = sigmoid(xb[hidden + k] + ab[hidden + k]);
      const T og = sigmoid(xb[2 * hidden + k] + ab[2 * hidden + k]);
      const T g = tanh_approx(xb[3 * hidden + k] + ab[3 * hidden + k]);
      ab[k] = i;
      ab[hidden + k] = f;
      ab[2 * hidden + k] = og;
      ab[3 * hidden + k] = g;
      const T cell = f * c_prev[o + k] + i * g;
      const T tcell = tanh_approx(cell);
      c[o + k] = cell;
      tc[o + k] = tcell;
      h[o + k] = og * tcell;
      h_masked[o + k] = og * tcell * mask[o + k];
    }
  }
}

// dh = grad + mask * (d gates_next W_hh) -> d gates (B, 4H); dc_next (B, H) updated in place
template <typename T>
void masked_lstm_step_backward(const T* __restrict__ grad, const T* __restrict__ dh_raw, const T* __restrict__ mask,
                               const T* __restrict__ a, const T* __restrict__ c_prev, const T* __restrict__ tc,
                               T* __restrict__ dc_next, T* __restrict__ d, int64_t batch, int64_t hidden) noexcept {
  for (int64_t b = 0; b < batch; ++b) {
    const T* ab = a + b * 4 * hidden;
    T* db = d + b * 4 * hidden;
    const int64_t o = b * hidden;
    for (int64_t k = 0; k < hidden; ++k) {
      const T i = ab[k], f = ab[hidden + k], og = ab[2 * hidden + k], g = ab[3 * hidden + k];
      const T dh = grad[o + k] + dh_raw[o + k] * mask[o + k];
      const T dc = dc_next[o + k] + dh * og * (1 - tc[o + k] * tc[o + k]);
      db[k] = dc * g * (i - i * i);
      db[hidden + k] = dc * c_prev[o + k] * (f - f * f);
      db[2 * hidden + k] = dh * tc[o + k] * (og - og * og);
      db[3 * hidden + k] = dc * i * (1 - g * g);
      dc_next[o + k] = dc * f;
    }
  }
}

// -> hs (T + 1, B, H), cs (T + 1, B, H) (zero state first), act (T, B, 4H) activated gates, tcs = tanh(c)
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> masked_lstm_forward(const at::Tensor& xw,
                                                                               const at::Tensor& w_hh,
                                                                               const at::Tensor& mask_in) {
  check_cpu_contiguous(xw, "xw");
  const int64_t steps = xw.size(0), batch = xw.size(1), hidden = xw.size(2) / 4;
  const at::Tensor w_t = w_hh.t().contiguous();  // (H, 4H)
  const at::Tensor mask = mask_in.contiguous();
  at::Tensor act = at::empty_like(xw);
  at::Tensor hs = at::empty({steps + 1, batch, hidden}, xw.options());
  at::Tensor cs = at::empty_like(hs);
  hs[0].zero_();
  cs[0].zero_();
  at::Tensor tcs = at::empty({steps, batch, hidden}, xw.options());
  at::Tensor h_masked = at::zeros({batch, hidden}, xw.options());
  const int64_t h_size = batch * hidden;
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "masked_lstm_forward", [&] {
    const scalar_t* x = xw.data_ptr<scalar_t>();
    scalar_t* a = act.data_ptr<scalar_t>();
    scalar_t* h = hs.data_ptr<scalar_t>();
    scalar_t* c = cs.data_ptr<scalar_t>();
    scalar_t* tc = tcs.data_ptr<scalar_t>();
    for (int64_t t = 0; t < steps; ++t) {
      at::Tensor a_t = act[t];
      at::mm_out(a_t, h_masked, w_t);
      masked_lstm_step(a + t * 4 * h_size, x + t * 4 * h_size, c + t * h_size, mask.data_ptr<scalar_t>(),
                       c + (t + 1) * h_size, tc + t * h_size, h + (t + 1) * h_size, h_masked.data_ptr<scalar_t>(),
                       batch, hidden);
    }
  });
  return {hs, cs, act, tcs};
}

// -> the gradient of the pre-activations (T, B, 4H)
at::Tensor masked_lstm_backward(const at::Tensor& grad_hs, const at::Tensor& cs, const at::Tensor& act,
                                const at::Tensor& tcs, const at::Tensor& w_hh, const at::Tensor& mask_in) {
  check_cpu_contiguous(grad_hs, "grad_hs");
  const int64_t steps = grad_hs.size(0), batch = grad_hs.size(1), hidden = grad_hs.size(2);
  const at::Tensor mask = mask_in.contiguous();
  at::Tensor dgates = at::empty_like(act);
  at::Tensor dh_raw = at::zeros({batch, hidden}, grad_hs.options());  // d gates_next W_hh, before the mask
  at::Tensor dc_next = at::zeros({batch, hidden}, grad_hs.options());
  const int64_t h_size = batch * hidden;
  AT_DISPATCH_FLOATING_TYPES(grad_hs.scalar_type(), "masked_lstm_backward", [&] {
    const scalar_t* g = grad_hs.data_ptr<scalar_t>();
    const scalar_t* a = act.data_ptr<scalar_t>();
    const scalar_t* c = cs.data_ptr<scalar_t>();
    const scalar_t* tc = tcs.data_ptr<scalar_t>();
    scalar_t* d = dgates.data_ptr<scalar_t>();
    for (int64_t t = steps - 1; t >= 0; --t) {
      masked_lstm_step_backward(g + t * h_size, dh_raw.data_ptr<scalar_t>(), mask.data_ptr<scalar_t>(),
                                a + t * 4 * h_size, c + t * h_size, tc + t * h_size, dc_next.data_ptr<scalar_t>(),
                                d + t * 4 * h_size, batch, hidden);
      at::mm_out(dh_raw, dgates[t], w_hh);
    }
  });
  return dgates;
}

}  // namespace

TORCH_LIBRARY(seqbench_cells, m) {
  m.def("gru_forward(Tensor xw, Tensor w_hh, Tensor b_hh, Tensor h0) -> (Tensor, Tensor, Tensor, Tensor)",
        &gru_forward);
  m.def("gru_backward(Tensor grad_hs, Tensor hs, Tensor rz, Tensor ns, Tensor hws, Tensor w_hh) "
        "-> (Tensor, Tensor, Tensor)",
        &gru_backward);
  m.def("rnn_forward(Tensor xw, Tensor w_hh, Tensor b_hh, Tensor h0) -> Tensor", &rnn_forward);
  m.def("rnn_backward(Tensor grad_hs, Tensor hs, Tensor w_hh) -> (Tensor, Tensor)", &rnn_backward);
  m.def("masked_lstm_forward(Tensor xw, Tensor w_hh, Tensor mask) -> (Tensor, Tensor, Tensor, Tensor)",
        &masked_lstm_forward);
  m.def("masked_lstm_backward(Tensor grad_hs, Tensor cs, Tensor act, Tensor tcs, Tensor w_hh, Tensor mask) "
        "-> Tensor",
        &masked_lstm_backward);
}
