// The step loops of seqbench/models/cells.py in C++: per step one GEMM (ATen's) and one fused pass
// over the (B, H) elements, where the TorchScript loops run 6-8 ATen ops per step, each a separate pass
// with its own dispatch. Same signatures and buffers as the Python loops (cells.py documents them);
// float32 and float64. Built on first use by cells.compiled_loops() and cached on disk.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

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

// Where x (T, B, F) keeps step t of row b (features contiguous): a batch-first input needs no copy.
struct Strides {
  int64_t step, row;
};

// (T, B, N) with each row's N elements contiguous, steps and rows at any distance
void check_rows(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.dim() == 3 && t.stride(2) == 1 && t.stride(0) >= 0 && t.stride(1) >= 0,
              name, " must be a (T, B, N) CPU tensor with contiguous rows");
}

// Rows of a batch never meet in a recurrence, so each of torch's threads runs the whole time loop over
// its own block of rows [begin, end), with single-threaded GEMMs and no synchronization per step.
// Splitting each step's small GEMM over the threads instead left them waiting on each other: the GRU
// loops (B 256, H 32) took as long with 2 threads as with 1. Each row's arithmetic is the same either
// way, and one thread runs all rows as one block.
constexpr int64_t kMinRowsPerThread = 8;

// BLAS's Fortran GEMM as torch's own library exports it (MKL in the x86-64 wheels), found at run time;
// MKL_Set_Num_Threads_Local keeps MKL from starting threads of its own inside a block. Where the GEMM is
// missing, or $SEQBENCH_ATEN_GEMM is set (the tests compare both), at::mm_out does the same product.
// Calling BLAS on raw pointers skips each step's Tensor bookkeeping, and matters with threads: at::mm_out
// on each step's rows builds Tensor views of the shared buffers, and two threads doing that every step
// contend on the buffers' shared reference counts (2 threads, B 256, H 32: 1.6x one thread's speed
// with a separate weight tensor per thread, 1.35x with a shared one).
template <typename T>
using FortranGemm = void (*)(const char*, const char*, const int*, const int*, const int*, const T*, const T*,
                             const int*, const T*, const int*, const T*, T*, const int*);

template <typename T>
FortranGemm<T> blas_gemm() {
  static const auto gemm = std::getenv("SEQBENCH_ATEN_GEMM") != nullptr ? nullptr
      : reinterpret_cast<FortranGemm<T>>(dlsym(RTLD_DEFAULT, std::is_same_v<T, float> ? "sgemm_" : "dgemm_"));
  return gemm;
}

// c (m, n) = op(a) op(b) + beta c for row-major matrices whose rows lie lda, ldb, ldc elements apart:
// op(a) (m, k) is a, or the transpose of a stored as (k, m) when a_transposed; op(b) (k, n) likewise.
template <typename T>
void gemm(const T* a, int64_t lda, bool a_transposed, const T* b, int64_t ldb, bool b_transposed, T* c, int64_t ldc,
          int64_t m, int64_t n, int64_t k, T beta) {
  if (const FortranGemm<T> fortran = blas_gemm<T>()) {
    // column-major BLAS reads each row-major matrix as its transpose: it computes c^T = op(b)^T op(a)^T
    const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
    const int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
    const T one = 1;
    fortran(b_transposed ? "T" : "N", a_transposed ? "T" : "N", &ni, &mi, &ki, &one, b, &lb, a, &la, &beta, c, &lc);
    return;
  }
  const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  const auto matrix = [&](const T* data, int64_t rows, int64_t cols, int64_t ld) {
    return at::from_blob(const_cast<T*>(data), {rows, cols}, {ld, 1}, options);
  };
  at::Tensor out = matrix(c, m, n, ldc);
  const at::Tensor lhs = a_transposed ? matrix(a, k, m, lda).t() : matrix(a, m, k, lda);
  const at::Tensor rhs = b_transposed ? matrix(b, n, k, ldb).t() : matrix(b, k, n, ldb);
  if (beta == T(0)) {
    at::mm_out(out, lhs, rhs);
  } else {
    out.addmm_(lhs, rhs, beta);
  }
}

// c (m, n) = a (m, k) b (k, n) + beta c, every matrix contiguous
template <typename T>
void gemm(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, T beta) {
  gemm(a, k, false, b, n, false, c, n, m, n, k, beta);
}

template <typename Loop>
void over_row_blocks(int64_t batch, const Loop& loop) {
  using SetLocalThreads = int (*)(int);
  static const auto set_local_threads =
      reinterpret_cast<SetLocalThreads>(dlsym(RTLD_DEFAULT, "MKL_Set_Num_Threads_Local"));
  at::parallel_for(0, batch, kMinRowsPerThread, [&](int64_t begin, int64_t end) {
    const bool single = set_local_threads != nullptr && at::in_parallel_region();
    const int before = single ? set_local_threads(1) : 0;
    loop(begin, end);
    if (single) set_local_threads(before);
  });
}

// The backward loops' weight and bias gradients: zeroed partial sums (threads, *shape), one slot per
// thread, so that a block's sums never race with another's; the caller sums over dim 0.
at::Tensor per_thread_sums(at::IntArrayRef shape, const at::TensorOptions& options) {
  std::vector<int64_t> sizes{at::get_num_threads()};
  sizes.insert(sizes.end(), shape.begin(), shape.end());
  return at::zeros(sizes, options);
}

// This thread's slot of per_thread_sums
int64_t thread_slot(const at::Tensor& sums, const char* op) {
  const int64_t slot = at::get_thread_num();
  TORCH_CHECK(slot < sums.size(0), op, ": thread ", slot, " of ", sums.size(0));
  return slot;
}

// The gradient flowing into the last step from after the sequence: grad_h, the gradient at the final
// state, returned by the layers apart from the outputs so that a model reading only the final state
// (most forecasters) does not make autograd fill a (T, B, H) gradient with zeros.
at::Tensor final_state_gradient(const at::Tensor& grad_h, int64_t batch, int64_t hidden, const at::Tensor& like) {
  TORCH_CHECK(grad_h.dim() == 2 && grad_h.size(0) == batch && grad_h.size(1) == hidden, "grad_h must be (B, H)");
  return grad_h.to(like.options()).contiguous().clone();
}

// The per-step element passes are separate noexcept functions on raw pointers: inside the dispatch
// lambdas (which hold tensors that may throw) the compiler does not vectorize them.

// --- GRU (nn.GRU's equations, rows [r, z, n]) ----------------------------------------------------
// r = sigmoid(xw_r + hw_r), z = sigmoid(xw_z + hw_z), n = tanh(xw_n + r * hw_n), h' = n + z * (h - n)
// with xw = x W_ih^T + b_ih and hw = h W_hh^T + b_hh; both arrive without their biases, added here.
// hw_n is stored for backward.
template <typename T>
void gru_step(const T* __restrict__ xw, const T* __restrict__ b_ih, const T* __restrict__ hw,
              const T* __restrict__ b_hh, const T* __restrict__ h, T* __restrict__ rz, T* __restrict__ hw_n,
              T* __restrict__ n_out, T* __restrict__ h_next, int64_t batch, int64_t hidden) noexcept {
  for (int64_t b = 0; b < batch; ++b) {
    const T* xb = xw + b * 3 * hidden;
    const T* hwb = hw + b * 3 * hidden;
    T* gb = rz + b * 2 * hidden;
    const int64_t o = b * hidden;
    for (int64_t k = 0; k < hidden; ++k) {
      const T hn = hwb[2 * hidden + k] + b_hh[2 * hidden + k];
      const T r = sigmoid((xb[k] + b_ih[k]) + (hwb[k] + b_hh[k]));
      const T z = sigmoid((xb[hidden + k] + b_ih[hidden + k]) + (hwb[hidden + k] + b_hh[hidden + k]));
      const T n = tanh_approx((xb[2 * hidden + k] + b_ih[2 * hidden + k]) + r * hn);
      gb[k] = r;
      gb[hidden + k] = z;
      hw_n[o + k] = hn;
      n_out[o + k] = n;
      h_next[o + k] = n + z * (h[o + k] - n);
    }
  }
}

// dh = grad + dh_next -> d hw (B, 3H) and d xw (B, 3H) per gate block [r, z, n] (they differ in n's,
// where xw_n enters alone and hw_n through r); dh_next becomes dh * z (the direct path h -> h'), to which
// the caller adds d hw W_hh.
template <typename T>
void gru_step_backward(const T* __restrict__ grad, int64_t grad_row, T* __restrict__ dh_next, const T* __restrict__ h,
                       const T* __restrict__ rz, const T* __restrict__ ns, const T* __restrict__ hw_n,
                       T* __restrict__ d_hw, T* __restrict__ d_xw, int64_t batch, int64_t hidden) noexcept {
  for (int64_t b = 0; b < batch; ++b) {
    const T* gb = rz + b * 2 * hidden;
    T* dhb = d_hw + b * 3 * hidden;
    T* dxb = d_xw + b * 3 * hidden;
    const int64_t o = b * hidden;
    for (int64_t k = 0; k < hidden; ++k) {
      const T dh = grad[b * grad_row + k] + dh_next[o + k];
      const T r = gb[k], z = gb[hidden + k], n = ns[o + k];
      const T dn = dh * (1 - z) * (1 - n * n);  // d n-pre-activation
      const T dr = dn * hw_n[o + k] * (r - r * r);  // r acts through r * hw_n
      const T dz = dh * (h[o + k] - n) * (z - z * z);  // dh' / dz = h - n
      dhb[k] = dr;
      dhb[hidden + k] = dz;
      dhb[2 * hidden + k] = dn * r;
      dxb[k] = dr;
      dxb[hidden + k] = dz;
      dxb[2 * hidden + k] = dn;
      dh_next[o + k] = dh * z;
    }
  }
}

// The rows [begin, end) of every step: per step a GEMM for the input's share (into a scratch block,
// never a (T, B, 3H) buffer) and one for the state's. w_ih_t (F, 3H), w_hh_t (H, 3H).
template <typename T>
void gru_forward_rows(const T* x, Strides xs, const T* w_ih_t, const T* w_hh_t, const T* b_ih, const T* b_hh, T* h,
                      T* rz, T* hw_n, T* n, int64_t steps, int64_t batch, int64_t features, int64_t hidden,
                      int64_t begin, int64_t end) {
  const int64_t rows = end - begin, h_size = batch * hidden, o = begin * hidden;
  std::vector<T> xw(rows * 3 * hidden), hw(rows * 3 * hidden);
  for (int64_t t = 0; t < steps; ++t) {
    gemm(x + t * xs.step + begin * xs.row, xs.row, false, w_ih_t, 3 * hidden, false, xw.data(), 3 * hidden, rows,
         3 * hidden, features, T(0));
    gemm(h + t * h_size + o, w_hh_t, hw.data(), rows, 3 * hidden, hidden, T(0));
    gru_step(xw.data(), b_ih, hw.data(), b_hh, h + t * h_size + o, rz + t * 2 * h_size + 2 * o, hw_n + t * h_size + o,
             n + t * h_size + o, h + (t + 1) * h_size + o, rows, hidden);
  }
}

// x (T, B, F), h0 (B, H) -> hs (T + 1, B, H) (h0 first), rz (T, B, 2H) activated r and z, ns (T, B, H),
// hw_n (T, B, H) = h W_hn^T + b_hn
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> gru_forward(const at::Tensor& x, const at::Tensor& w_ih,
                                                                       const at::Tensor& w_hh, const at::Tensor& b_ih,
                                                                       const at::Tensor& b_hh, const at::Tensor& h0) {
  check_rows(x, "x");
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2), hidden = w_hh.size(1);
  const Strides xs{x.stride(0), x.stride(1)};
  const at::Tensor w_ih_t = w_ih.t().contiguous(), w_hh_t = w_hh.t().contiguous();  // (F, 3H), (H, 3H)
  const at::Tensor bias_ih = b_ih.contiguous(), bias_hh = b_hh.contiguous();
  at::Tensor hs = at::empty({steps + 1, batch, hidden}, x.options());
  hs[0].copy_(h0);
  at::Tensor rz = at::empty({steps, batch, 2 * hidden}, x.options());
  at::Tensor ns = at::empty({steps, batch, hidden}, x.options());
  at::Tensor hw_n = at::empty({steps, batch, hidden}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_forward", [&] {
    over_row_blocks(batch, [&](int64_t begin, int64_t end) {
      gru_forward_rows(x.data_ptr<scalar_t>(), xs, w_ih_t.data_ptr<scalar_t>(), w_hh_t.data_ptr<scalar_t>(),
                       bias_ih.data_ptr<scalar_t>(), bias_hh.data_ptr<scalar_t>(), hs.data_ptr<scalar_t>(),
                       rz.data_ptr<scalar_t>(), hw_n.data_ptr<scalar_t>(), ns.data_ptr<scalar_t>(), steps, batch,
                       features, hidden, begin, end);
    });
  });
  return {hs, rz, ns, hw_n};
}

// Column sums of d (rows, n) added to sum (n)
template <typename T>
void add_column_sums(const T* d, int64_t rows, int64_t n, T* sum) noexcept {
  for (int64_t r = 0; r < rows; ++r) {
    const T* dr = d + r * n;
    for (int64_t j = 0; j < n; ++j) sum[j] += dr[j];
  }
}

// Backward through the rows [begin, end) of every step; w_ih (3H, F), w_hh (3H, H). The weight and bias
// gradients accumulate step by step into this thread's own partial sums while each step's derivatives
// are in cache, instead of in (T x B)-deep products over (T, B, 3H) buffers afterwards.
template <typename T>
void gru_backward_rows(const T* grad, Strides gs, const T* x, Strides xs, const T* w_ih, const T* w_hh, const T* h,
                       const T* rz, const T* ns, const T* hw_n, T* dh_next, T* dx, T* g_w_ih, T* g_w_hh, T* g_b_ih,
                       T* g_b_hh, int64_t steps, int64_t batch, int64_t features, int64_t hidden, int64_t begin,
                       int64_t end) {
  const int64_t rows = end - begin, h_size = batch * hidden, o = begin * hidden;
  std::vector<T> d_hw(rows * 3 * hidden), d_xw(rows * 3 * hidden);
  for (int64_t t = steps - 1; t >= 0; --t) {
    gru_step_backward(grad + t * gs.step + begin * gs.row, gs.row, dh_next + o, h + t * h_size + o,
                      rz + t * 2 * h_size + 2 * o, ns + t * h_size + o, hw_n + t * h_size + o, d_hw.data(),
                      d_xw.data(), rows, hidden);
    const T* x_t = x + t * xs.step + begin * xs.row;
    gemm(d_xw.data(), 3 * hidden, true, x_t, xs.row, false, g_w_ih, features, 3 * hidden, features, rows, T(1));
    gemm(d_hw.data(), 3 * hidden, true, h + t * h_size + o, hidden, false, g_w_hh, hidden, 3 * hidden, hidden, rows,
         T(1));
    add_column_sums(d_xw.data(), rows, 3 * hidden, g_b_ih);
    add_column_sums(d_hw.data(), rows, 3 * hidden, g_b_hh);
    if (dx != nullptr) {  // d x_t = d xw W_ih
      gemm(d_xw.data(), w_ih, dx + (t * batch + begin) * features, rows, features, 3 * hidden, T(0));
    }
    gemm(d_hw.data(), w_hh, dh_next + o, rows, hidden, 3 * hidden, T(1));  // dh_next (dh * z) += d hw W_hh
  }
}

// grad_h (B, H): the gradient at the last state. -> d x (T, B, F) (empty unless need_dx), d W_ih (3H, F),
// d W_hh (3H, H), d b_ih, d b_hh (3H), d h0 (B, H)
std::vector<at::Tensor> gru_backward(const at::Tensor& grad_hs, const at::Tensor& grad_h, const at::Tensor& x, const at::Tensor& w_ih,
                                     const at::Tensor& w_hh, const at::Tensor& hs, const at::Tensor& rz,
                                     const at::Tensor& ns, const at::Tensor& hw_n, bool need_dx) {
  check_rows(grad_hs, "grad_hs");
  check_rows(x, "x");
  const int64_t steps = grad_hs.size(0), batch = grad_hs.size(1), hidden = grad_hs.size(2), features = x.size(2);
  const Strides gs{grad_hs.stride(0), grad_hs.stride(1)}, xs{x.stride(0), x.stride(1)};
  const at::Tensor weight_ih = w_ih.contiguous(), weight_hh = w_hh.contiguous();
  at::Tensor dx = need_dx ? at::empty({steps, batch, features}, x.options()) : at::empty({0}, x.options());
  at::Tensor dh_next = final_state_gradient(grad_h, batch, hidden, x);
  at::Tensor g_w_ih = per_thread_sums({3 * hidden, features}, x.options());
  at::Tensor g_w_hh = per_thread_sums({3 * hidden, hidden}, x.options());
  at::Tensor g_b = per_thread_sums({2, 3 * hidden}, x.options());
  AT_DISPATCH_FLOATING_TYPES(grad_hs.scalar_type(), "gru_backward", [&] {
    scalar_t* d_x = need_dx ? dx.data_ptr<scalar_t>() : nullptr;
    over_row_blocks(batch, [&](int64_t begin, int64_t end) {
      const int64_t slot = thread_slot(g_w_ih, "gru_backward");
      gru_backward_rows(grad_hs.data_ptr<scalar_t>(), gs, x.data_ptr<scalar_t>(), xs, weight_ih.data_ptr<scalar_t>(),
                        weight_hh.data_ptr<scalar_t>(), hs.data_ptr<scalar_t>(), rz.data_ptr<scalar_t>(),
                        ns.data_ptr<scalar_t>(), hw_n.data_ptr<scalar_t>(), dh_next.data_ptr<scalar_t>(), d_x,
                        g_w_ih[slot].data_ptr<scalar_t>(), g_w_hh[slot].data_ptr<scalar_t>(),
                        g_b[slot][0].data_ptr<scalar_t>(), g_b[slot][1].data_ptr<scalar_t>(), steps, batch, features,
                        hidden, begin, end);
    });
  });
  const at::Tensor g_bias = g_b.sum(0);
  return {dx, g_w_ih.sum(0), g_w_hh.sum(0), g_bias[0], g_bias[1], dh_next};
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

// grad's rows grad_row elements apart; the others (batch, hidden) contiguous
template <typename T>
void rnn_step_backward(const T* __restrict__ grad, int64_t grad_row, const T* __restrict__ dh_next,
                       const T* __restrict__ h, T* __restrict__ d_pre, int64_t batch, int64_t hidden) noexcept {
  for (int64_t b = 0; b < batch; ++b) {
    const T* gb = grad + b * grad_row;
    const int64_t o = b * hidden;
    for (int64_t k = 0; k < hidden; ++k) d_pre[o + k] = (gb[k] + dh_next[o + k]) * (1 - h[o + k] * h[o + k]);
  }
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
    const scalar_t* b = bias.data_ptr<scalar_t>();
    const scalar_t* w = w_t.data_ptr<scalar_t>();
    over_row_blocks(batch, [&](int64_t begin, int64_t end) {
      const int64_t o = begin * hidden;
      for (int64_t t = 0; t < steps; ++t) {
        gemm(h + t * h_size + o, w, h + (t + 1) * h_size + o, end - begin, hidden, hidden, scalar_t(0));
        rnn_step(h + (t + 1) * h_size + o, b, x + t * h_size + o, end - begin, hidden);
      }
    });
  });
  return hs;
}

// grad_h (B, H): the gradient at the last state. -> the gradient of the pre-activations (T, B, H) and
// d h0 (B, H)
std::tuple<at::Tensor, at::Tensor> rnn_backward(const at::Tensor& grad_hs, const at::Tensor& grad_h,
                                                const at::Tensor& hs, const at::Tensor& w_hh) {
  check_rows(grad_hs, "grad_hs");
  const int64_t steps = grad_hs.size(0), batch = grad_hs.size(1), hidden = grad_hs.size(2);
  const Strides gs{grad_hs.stride(0), grad_hs.stride(1)};
  at::Tensor d_pre = at::empty({steps, batch, hidden}, hs.options());
  at::Tensor dh_next = final_state_gradient(grad_h, batch, hidden, hs);
  const at::Tensor weight = w_hh.contiguous();  // (H, H)
  const int64_t h_size = batch * hidden;
  AT_DISPATCH_FLOATING_TYPES(grad_hs.scalar_type(), "rnn_backward", [&] {
    const scalar_t* g = grad_hs.data_ptr<scalar_t>();
    const scalar_t* h = hs.data_ptr<scalar_t>();
    scalar_t* d = d_pre.data_ptr<scalar_t>();
    scalar_t* dh = dh_next.data_ptr<scalar_t>();
    const scalar_t* w = weight.data_ptr<scalar_t>();
    over_row_blocks(batch, [&](int64_t begin, int64_t end) {
      const int64_t o = begin * hidden;
      for (int64_t t = steps - 1; t >= 0; --t) {
        rnn_step_backward(g + t * gs.step + begin * gs.row, gs.row, dh + o, h + (t + 1) * h_size + o,
                          d + t * h_size + o, end - begin, hidden);
        gemm(d + t * h_size + o, w, dh + o, end - begin, hidden, hidden, scalar_t(0));
      }
    });
  });
  return {d_pre, dh_next};
}

// --- LSTM, gates [i, f, o, g], optionally with a recurrent-dropout mask -----------------------------
// a (B, 4H) = x W_ih^T + h_in W_hh^T on entry, + bias -> activated in place; c = f c_prev + i g;
// h = o tanh(c); the next step's h_in = h, or h * mask with a mask, rows h_in_row elements apart
template <typename T, bool kMasked>
void lstm_step(T* __restrict__ a, const T* __restrict__ bias, const T* __restrict__ c_prev,
               const T* __restrict__ mask, T* __restrict__ c, T* __restrict__ tc, T* __restrict__ h,
               T* __restrict__ h_in, int64_t h_in_row, int64_t batch, int64_t hidden) noexcept {
  for (int64_t b = 0; b < batch; ++b) {
    T* ab = a + b * 4 * hidden;
    T* hb = h_in + b * h_in_row;
    const int64_t o = b * hidden;
    for (int64_t k = 0; k < hidden; ++k) {
      const T i = sigmoid(ab[k] + bias[k]), f = sigmoid(ab[hidden + k] + bias[hidden + k]);
      const T og = sigmoid(ab[2 * hidden + k] + bias[2 * hidden + k]);
      const T g = tanh_approx(ab[3 * hidden + k] + bias[3 * hidden + k]);
      ab[k] = i;
      ab[hidden + k] = f;
      ab[2 * hidden + k] = og;
      ab[3 * hidden + k] = g;
      const T cell = f * c_prev[o + k] + i * g;
      const T tcell = tanh_approx(cell);
      c[o + k] = cell;
      tc[o + k] = tcell;
      h[o + k] = og * tcell;
      hb[k] = kMasked ? og * tcell * mask[o + k] : og * tcell;
    }
  }
}

// dh = grad + dh_next -> d gates (B, 4H); dc_next (B, H) updated in place
template <typename T>
void lstm_step_backward(const T* __restrict__ grad, int64_t grad_row, const T* __restrict__ dh_next,
                        const T* __restrict__ a, const T* __restrict__ c_prev, const T* __restrict__ tc,
                        T* __restrict__ dc_next, T* __restrict__ d, int64_t batch, int64_t hidden) noexcept {
  for (int64_t b = 0; b < batch; ++b) {
    const T* ab = a + b * 4 * hidden;
    T* db = d + b * 4 * hidden;
    const int64_t o = b * hidden;
    for (int64_t k = 0; k < hidden; ++k) {
      const T i = ab[k], f = ab[hidden + k], og = ab[2 * hidden + k], g = ab[3 * hidden + k];
      const T dh = dh_next[o + k] + grad[b * grad_row + k];
      const T dc = dc_next[o + k] + dh * og * (1 - tc[o + k] * tc[o + k]);
      db[k] = dc * g * (i - i * i);
      db[hidden + k] = dc * c_prev[o + k] * (f - f * f);
      db[2 * hidden + k] = dh * tc[o + k] * (og - og * og);
      db[3 * hidden + k] = dc * i * (1 - g * g);
      dc_next[o + k] = dc * f;
    }
  }
}

// Copies rows [begin, begin + rows) of step slice `from` (rows `from_row` apart) into the first n columns
// of `to` (rows `to_row` apart)
template <typename T>
void copy_rows(const T* from, int64_t from_row, T* to, int64_t to_row, int64_t rows, int64_t n) noexcept {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(to + r * to_row, from + r * from_row, n * sizeof(T));
}

// The rows [begin, end) of every step. Each step is one GEMM [x_t, h_in] (rows, F + H) by w_t (F + H, 4H),
// the stacked W_ih^T and W_hh^T: no (T, B, 4H) buffer of input projections is written and read back, and
// one GEMM call with K = F + H costs less than two with K = F and K = H.
template <typename T, bool kMasked>
void lstm_forward_rows(const T* x, Strides xs, const T* w_t, const T* bias, const T* mask, T* a, T* h, T* c, T* tc,
                       int64_t steps, int64_t batch, int64_t features, int64_t hidden, int64_t begin, int64_t end) {
  const int64_t rows = end - begin, h_size = batch * hidden, o = begin * hidden, width = features + hidden;
  std::vector<T> xh(rows * width, T(0));  // [x_t, h_in]: the state before the first step is zero
  for (int64_t t = 0; t < steps; ++t) {
    T* a_t = a + t * 4 * h_size + 4 * o;
    copy_rows(x + t * xs.step + begin * xs.row, xs.row, xh.data(), width, rows, features);
    gemm(xh.data(), w_t, a_t, rows, 4 * hidden, width, T(0));
    lstm_step<T, kMasked>(a_t, bias, c + t * h_size + o, mask + (kMasked ? o : 0), c + (t + 1) * h_size + o,
                          tc + t * h_size + o, h + (t + 1) * h_size + o, xh.data() + features, width, rows, hidden);
  }
}

// -> hs (T + 1, B, H), cs (T + 1, B, H) (zero state first), act (T, B, 4H) activated gates, tcs = tanh(c)
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm_forward(const at::Tensor& x, const at::Tensor& w_ih,
                                                                        const at::Tensor& w_hh, const at::Tensor& bias,
                                                                        const std::optional<at::Tensor>& mask_in) {
  check_rows(x, "x");
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2), hidden = w_hh.size(1);
  const Strides xs{x.stride(0), x.stride(1)};
  const at::Tensor w_t = at::cat({w_ih, w_hh}, 1).t().contiguous(), b = bias.contiguous();  // (F + H, 4H)
  const bool masked = mask_in.has_value() && mask_in->defined();
  const at::Tensor mask = masked ? mask_in->contiguous() : at::Tensor();
  at::Tensor act = at::empty({steps, batch, 4 * hidden}, x.options());
  at::Tensor hs = at::empty({steps + 1, batch, hidden}, x.options());
  at::Tensor cs = at::empty_like(hs);
  hs[0].zero_();
  cs[0].zero_();
  at::Tensor tcs = at::empty({steps, batch, hidden}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_forward", [&] {
    const scalar_t* m = masked ? mask.data_ptr<scalar_t>() : nullptr;
    over_row_blocks(batch, [&](int64_t begin, int64_t end) {
      const auto run = masked ? lstm_forward_rows<scalar_t, true> : lstm_forward_rows<scalar_t, false>;
      run(x.data_ptr<scalar_t>(), xs, w_t.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), m, act.data_ptr<scalar_t>(),
          hs.data_ptr<scalar_t>(), cs.data_ptr<scalar_t>(), tcs.data_ptr<scalar_t>(), steps, batch, features, hidden,
          begin, end);
    });
  });
  return {hs, cs, act, tcs};
}

// Backward through the rows [begin, end) of every step; w (4H, F + H) = [W_ih, W_hh]. The weight and bias
// gradients accumulate step by step, [d W_ih, d W_hh] += d^T [x_t, h_in] in one GEMM, into this thread's
// own (4H, F + H) and (4H) partial sums while each step's d gates is in cache, instead of in (T x B)-deep
// products over a (T, B, 4H) buffer afterwards.
// dh_next (B, H) holds the gradient at the last state on entry.
template <typename T, bool kMasked>
void lstm_backward_rows(const T* grad, Strides gs, const T* x, Strides xs, const T* w, const T* mask, const T* h,
                        const T* c, const T* a, const T* tc, T* dh_next, T* dc_next, T* dx, T* g_w, T* g_b,
                        int64_t steps, int64_t batch, int64_t features, int64_t hidden, int64_t begin, int64_t end) {
  const int64_t rows = end - begin, h_size = batch * hidden, o = begin * hidden, width = features + hidden;
  std::vector<T> d(rows * 4 * hidden), xh(rows * width);
  for (int64_t t = steps - 1; t >= 0; --t) {
    lstm_step_backward(grad + t * gs.step + begin * gs.row, gs.row, dh_next + o, a + t * 4 * h_size + 4 * o,
                       c + t * h_size + o, tc + t * h_size + o, dc_next + o, d.data(), rows, hidden);
    copy_rows(x + t * xs.step + begin * xs.row, xs.row, xh.data(), width, rows, features);
    const T* h_t = h + t * h_size + o;  // what W_hh saw at step t: h_{t-1} (times the mask); zero at t = 0
    for (int64_t r = 0; r < rows; ++r) {
      T* to = xh.data() + r * width + features;
      for (int64_t k = 0; k < hidden; ++k) to[k] = kMasked ? h_t[r * hidden + k] * mask[o + r * hidden + k] : h_t[r * hidden + k];
    }
    gemm(d.data(), 4 * hidden, true, xh.data(), width, false, g_w, width, 4 * hidden, width, rows, T(1));
    add_column_sums(d.data(), rows, 4 * hidden, g_b);
    if (dx != nullptr) {  // d x_t = d W_ih
      gemm(d.data(), 4 * hidden, false, w, width, false, dx + (t * batch + begin) * features, features, rows, features,
           4 * hidden, T(0));
    }
    if (t > 0) {  // dh of step t - 1 = d W_hh (times the mask); the zero state before the first step needs none
      T* dh = dh_next + o;
      gemm(d.data(), 4 * hidden, false, w + features, width, false, dh, hidden, rows, hidden, 4 * hidden, T(0));
      if constexpr (kMasked) {
        for (int64_t i = 0; i < rows * hidden; ++i) dh[i] *= mask[o + i];
      }
    }
  }
}

// grad_h and grad_c (B, H): the gradients at the last state. -> d x (T, B, F) (empty unless need_dx),
// d W_ih (4H, F), d W_hh (4H, H), d bias (4H)
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm_backward(
    const at::Tensor& grad_hs, const at::Tensor& grad_h, const at::Tensor& grad_c, const at::Tensor& x, const at::Tensor& w_ih,
    const at::Tensor& w_hh, const std::optional<at::Tensor>& mask_in, const at::Tensor& hs, const at::Tensor& cs,
    const at::Tensor& act, const at::Tensor& tcs, bool need_dx) {
  check_rows(grad_hs, "grad_hs");
  check_rows(x, "x");
  const int64_t steps = grad_hs.size(0), batch = grad_hs.size(1), hidden = grad_hs.size(2), features = x.size(2);
  const Strides gs{grad_hs.stride(0), grad_hs.stride(1)}, xs{x.stride(0), x.stride(1)};
  const bool masked = mask_in.has_value() && mask_in->defined();
  const at::Tensor mask = masked ? mask_in->contiguous() : at::Tensor();
  const at::Tensor weight = at::cat({w_ih, w_hh}, 1);  // (4H, F + H)
  at::Tensor dx = need_dx ? at::empty({steps, batch, features}, x.options()) : at::empty({0}, x.options());
  at::Tensor dh_next = final_state_gradient(grad_h, batch, hidden, x);
  at::Tensor dc_next = final_state_gradient(grad_c, batch, hidden, x);
  at::Tensor g_w = per_thread_sums({4 * hidden, features + hidden}, x.options());
  at::Tensor g_b = per_thread_sums({4 * hidden}, x.options());
  AT_DISPATCH_FLOATING_TYPES(grad_hs.scalar_type(), "lstm_backward", [&] {
    const scalar_t* m = masked ? mask.data_ptr<scalar_t>() : nullptr;
    scalar_t* d_x = need_dx ? dx.data_ptr<scalar_t>() : nullptr;
    over_row_blocks(batch, [&](int64_t begin, int64_t end) {
      const int64_t slot = thread_slot(g_w, "lstm_backward");
      const auto run = masked ? lstm_backward_rows<scalar_t, true> : lstm_backward_rows<scalar_t, false>;
      run(grad_hs.data_ptr<scalar_t>(), gs, x.data_ptr<scalar_t>(), xs, weight.data_ptr<scalar_t>(), m,
          hs.data_ptr<scalar_t>(), cs.data_ptr<scalar_t>(), act.data_ptr<scalar_t>(), tcs.data_ptr<scalar_t>(),
          dh_next.data_ptr<scalar_t>(), dc_next.data_ptr<scalar_t>(), d_x, g_w[slot].data_ptr<scalar_t>(),
          g_b[slot].data_ptr<scalar_t>(), steps, batch, features, hidden, begin, end);
    });
  });
  const at::Tensor g_weight = g_w.sum(0);
  return {dx, g_weight.narrow(1, 0, features).contiguous(), g_weight.narrow(1, features, hidden).contiguous(),
          g_b.sum(0)};
}

}  // namespace

namespace {
// Whether the loops call BLAS directly (else at::mm_out): for the tests and bench reports
bool calls_blas() { return blas_gemm<float>() != nullptr && blas_gemm<double>() != nullptr; }
}  // namespace

TORCH_LIBRARY(seqbench_cells, m) {
  m.def("calls_blas() -> bool", &calls_blas);
  m.def("gru_forward(Tensor x, Tensor w_ih, Tensor w_hh, Tensor b_ih, Tensor b_hh, Tensor h0) "
        "-> (Tensor, Tensor, Tensor, Tensor)",
        &gru_forward);
  m.def("gru_backward(Tensor grad_hs, Tensor grad_h, Tensor x, Tensor w_ih, Tensor w_hh, Tensor hs, Tensor rz, Tensor ns, "
        "Tensor hw_n, bool need_dx) -> Tensor[]",
        &gru_backward);
  m.def("rnn_forward(Tensor xw, Tensor w_hh, Tensor b_hh, Tensor h0) -> Tensor", &rnn_forward);
  m.def("rnn_backward(Tensor grad_hs, Tensor grad_h, Tensor hs, Tensor w_hh) -> (Tensor, Tensor)", &rnn_backward);
  m.def("lstm_forward(Tensor x, Tensor w_ih, Tensor w_hh, Tensor bias, Tensor? mask) -> (Tensor, Tensor, Tensor, Tensor)",
        &lstm_forward);
  m.def("lstm_backward(Tensor grad_hs, Tensor grad_h, Tensor grad_c, Tensor x, Tensor w_ih, Tensor w_hh, Tensor? mask, Tensor hs, "
        "Tensor cs, Tensor act, Tensor tcs, bool need_dx) -> (Tensor, Tensor, Tensor, Tensor)",
        &lstm_backward);
}
