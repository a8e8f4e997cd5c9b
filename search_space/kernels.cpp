// Structured CPU kernels of the grouped training path (search_space/kernels.py loads this
// with torch.utils.cpp_extension on first use; issue 24).
//
// Why hand-written: at the CPU rungs' settings (one thread, batch 64, 16x16) ATen's
// BatchNorm and its NCHW depth-wise 3x3 convolution run far below this CPU's copy
// bandwidth (docs/performance.md, the roofline tables). Here each works channel by channel:
// a channel's values (64 KiB at 16x16, batch 64) stay in L2 between the statistics pass
// and the write pass, so each kernel reads its input from memory once.
//
// Vectorisation: plain loops the compiler vectorises at -O3. Sums use L independent lane
// accumulators (a float reduction in one accumulator is not vectorised without
// -ffast-math), flushed into double every run of at most CHUNK values.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <type_traits>
#include <cmath>
#include <cstring>
#include <vector>

#include "simd.h"

namespace {

using igc::V;
using igc::Vec;
using igc::load_vec;

constexpr int L = 16;
constexpr int64_t CHUNK = 1024;

// Where the values of channel c, image i start: "cp" is (C, N, HW) channel-major, else
// (N, C, HW). A run is HW values, contiguous in both.
struct Layout {
  int64_t n, c, hw;
  bool cp;
  int64_t off(int64_t ch, int64_t img) const {
    return cp ? (ch * n + img) * hw : (img * c + ch) * hw;
  }
};

// ChannelShuffle(g) after BatchNorm: channel gi * (C/g) + k goes to k * g + gi (eq. 4's P_l).
inline int64_t shuffled(int64_t ch, int64_t c, int64_t g) {
  const int64_t per = c / g;
  return (ch % per) * g + ch / per;
}

// A channel's runs in NCHW are HW values (1 KiB at 16x16) C * HW apart: too short for the
// hardware prefetcher to find, so each pass asks for the run it reads AHEAD runs on.
constexpr int64_t AHEAD = 2;
template <typename T>
inline void prefetch_run(const T* p, int64_t len) {
  for (int64_t j = 0; j < len; j += 64 / int64_t(sizeof(T))) __builtin_prefetch(p + j);
}

// Sums of (p[j] - shift) and of its square over one run, into double.
template <typename T>
IGC_CLONES void run_moments(const T* p, int64_t len, T shift, double& s1, double& s2) {
  for (int64_t j0 = 0; j0 < len; j0 += CHUNK) {
    const int64_t end = std::min(len, j0 + CHUNK);
    T a1[L] = {}, a2[L] = {};
    int64_t j = j0;
    for (; j + L <= end; j += L)
      for (int k = 0; k < L; ++k) {
        const T d = p[j + k] - shift;
        a1[k] += d;
        a2[k] += d * d;
      }
    for (; j < end; ++j) {
      const T d = p[j] - shift;
      a1[0] += d;
      a2[0] += d * d;
    }
    for (int k = 0; k < L; ++k) {
      s1 += a1[k];
      s2 += a2[k];
    }
  }
}

// dy, masked by y > 0 where the forward had a ReLU (threshold_backward: 0 where y <= 0,
// whatever dy is). A bit mask, not a select: g++ 12 vectorised neither a branch nor
// `y > 0 ? g : 0` in the lane sums, and the branch costs mispredictions on random signs.
template <bool Masked, typename T>
inline T masked(const T* gy, const T* y, int64_t j) {
  const T g = gy[j];
  if constexpr (Masked) {
    using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    const U m = U(0) - U(y[j] > T(0));
    return std::bit_cast<T>(std::bit_cast<U>(g) & m);
  }
  return g;
}

// Sums of dy and of dy * (x - mean) over one run.
template <bool Masked, typename T>
IGC_CLONES void run_grad_sums(const T* gy, const T* y, const T* x, int64_t len, T mean, double& sd,
                   double& sdx) {
  for (int64_t j0 = 0; j0 < len; j0 += CHUNK) {
    const int64_t end = std::min(len, j0 + CHUNK);
    T a1[L] = {}, a2[L] = {};
    int64_t j = j0;
    for (; j + L <= end; j += L)
      for (int k = 0; k < L; ++k) {
        const T d = masked<Masked>(gy, y, j + k);
        a1[k] += d;
        a2[k] += d * (x[j + k] - mean);
      }
    for (; j < end; ++j) {
      const T d = masked<Masked>(gy, y, j);
      a1[0] += d;
      a2[0] += d * (x[j] - mean);
    }
    for (int k = 0; k < L; ++k) {
      sd += a1[k];
      sdx += a2[k];
    }
  }
}

// y = (x - mean) * scale + bias, [ReLU], over one run.
template <typename T>
IGC_CLONES void bn_write_run(const T* __restrict__ p, T* __restrict__ q, int64_t len, T mc,
                             T sc, T bc, bool relu) {
  if (relu) {
    for (int64_t j = 0; j < len; ++j) q[j] = std::max((p[j] - mc) * sc + bc, T(0));
  } else {
    for (int64_t j = 0; j < len; ++j) q[j] = (p[j] - mc) * sc + bc;
  }
}

// dx = (dy - k1 - (x - mean) * k2) * ws over one run.
template <bool Masked, typename T>
IGC_CLONES void bn_dx_run(const T* __restrict__ g, const T* __restrict__ r,
                          const T* __restrict__ p, T* __restrict__ q, int64_t len, T mc, T k1,
                          T k2, T ws) {
  for (int64_t j = 0; j < len; ++j)
    q[j] = (masked<Masked>(g, r, j) - k1 - (p[j] - mc) * k2) * ws;
}

struct BnArgs {
  Layout src, dst;
  int64_t g;
  bool relu;
  double eps;
};

template <typename T>
void bn_forward_impl(const T* x, const T* w, const T* b, T* y, T* mean, T* var, T* invstd,
                     const BnArgs& a) {
  const Layout& s = a.src;
  const double m = double(s.n * s.hw);
  at::parallel_for(0, s.c, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      // Shifted by the channel's first value: the variance of (x - shift) loses no digits
      // to a mean far from 0, so one pass takes both moments.
      const T shift = x[s.off(c, 0)];
      double s1 = 0, s2 = 0;
      for (int64_t i = 0; i < s.n; ++i) {
        if (i + AHEAD < s.n) prefetch_run(x + s.off(c, i + AHEAD), s.hw);
        run_moments(x + s.off(c, i), s.hw, shift, s1, s2);
      }
      const double mu = s1 / m;
      const double v = std::max(s2 / m - mu * mu, 0.0);
      const double is = 1.0 / std::sqrt(v + a.eps);
      mean[c] = T(double(shift) + mu);
      var[c] = T(v);
      invstd[c] = T(is);
      const T mc = mean[c], sc = T(double(w[c]) * is), bc = b[c];
      const int64_t oc = shuffled(c, s.c, a.g);
      for (int64_t i = 0; i < s.n; ++i)
        bn_write_run(x + s.off(c, i), y + a.dst.off(oc, i), s.hw, mc, sc, bc, a.relu);
    }
  });
}

template <bool Masked, typename T>
void bn_backward_channels(const T* gy, const T* y, const T* x, const T* w, const T* mean,
                      const T* invstd, T* dx, T* dw, T* db, const BnArgs& a) {
  const Layout& s = a.src;
  const double m = double(s.n * s.hw);
  at::parallel_for(0, s.c, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t oc = shuffled(c, s.c, a.g);
      double sd = 0, sdx = 0;
      for (int64_t i = 0; i < s.n; ++i) {
        const int64_t o = a.dst.off(oc, i);
        if (i + AHEAD < s.n) {
          const int64_t o2 = a.dst.off(oc, i + AHEAD);
          prefetch_run(gy + o2, s.hw);
          if (Masked) prefetch_run(y + o2, s.hw);
          prefetch_run(x + s.off(c, i + AHEAD), s.hw);
        }
        run_grad_sums<Masked>(gy + o, Masked ? y + o : y, x + s.off(c, i), s.hw, mean[c], sd,
                              sdx);
      }
      const double is = double(invstd[c]);
      db[c] = T(sd);
      dw[c] = T(sdx * is);
      // dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) invstd
      const T k1 = T(sd / m), k2 = T(sdx / m * is * is), ws = T(double(w[c]) * is);
      const T mc = mean[c];
      for (int64_t i = 0; i < s.n; ++i) {
        const int64_t o = a.dst.off(oc, i);
        bn_dx_run<Masked>(gy + o, Masked ? y + o : y, x + s.off(c, i), dx + s.off(c, i), s.hw,
                          mc, k1, k2, ws);
      }
    }
  });
}

template <typename T>
void bn_backward_impl(const T* gy, const T* y, const T* x, const T* w, const T* mean,
                      const T* invstd, T* dx, T* dw, T* db, const BnArgs& a) {
  if (y)
    bn_backward_channels<true>(gy, y, x, w, mean, invstd, dx, dw, db, a);
  else
    bn_backward_channels<false>(gy, y, x, w, mean, invstd, dx, dw, db, a);
}

BnArgs bn_args(int64_t n, int64_t c, int64_t hw, bool src_cp, bool dst_cp, int64_t g,
               bool relu, double eps) {
  // Both channel-major: a channel is one run of N * HW values.
  if (src_cp && dst_cp) return {{1, c, n * hw, true}, {1, c, n * hw, true}, g, relu, eps};
  return {{n, c, hw, src_cp}, {n, c, hw, dst_cp}, g, relu, eps};
}

// -> (y, mean, biased var, invstd); y in the dst layout, channels shuffled by g.
std::vector<at::Tensor> bn_forward(const at::Tensor& x, const at::Tensor& w,
                                   const at::Tensor& b, int64_t n, int64_t c, int64_t hw,
                                   bool src_cp, bool dst_cp, int64_t g, bool relu,
                                   double eps) {
  TORCH_CHECK(x.is_contiguous() && x.numel() == n * c * hw && c % g == 0, "bn_forward: shape");
  const BnArgs a = bn_args(n, c, hw, src_cp, dst_cp, g, relu, eps);
  at::Tensor y = at::empty_like(x), mean = at::empty({c}, x.options());
  at::Tensor var = at::empty({c}, x.options()), invstd = at::empty({c}, x.options());
  at::Tensor wc = w.contiguous().to(x.scalar_type()), bc = b.contiguous().to(x.scalar_type());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bn_forward", [&] {
    bn_forward_impl<scalar_t>(x.data_ptr<scalar_t>(), wc.data_ptr<scalar_t>(),
                              bc.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                              mean.data_ptr<scalar_t>(), var.data_ptr<scalar_t>(),
                              invstd.data_ptr<scalar_t>(), a);
  });
  return {y, mean, var, invstd};
}

// -> (dx in the src layout, dweight, dbias); y: the forward's output where it had a ReLU.
std::vector<at::Tensor> bn_backward(const at::Tensor& gy, const c10::optional<at::Tensor>& y,
                                    const at::Tensor& x, const at::Tensor& w,
                                    const at::Tensor& mean, const at::Tensor& invstd,
                                    int64_t n, int64_t c, int64_t hw, bool src_cp,
                                    bool dst_cp, int64_t g) {
  TORCH_CHECK(gy.is_contiguous() && x.is_contiguous() && gy.numel() == x.numel(),
              "bn_backward: shape");
  const BnArgs a = bn_args(n, c, hw, src_cp, dst_cp, g, y.has_value(), 0.0);
  at::Tensor dx = at::empty_like(x), dw = at::empty({c}, x.options());
  at::Tensor db = at::empty({c}, x.options());
  at::Tensor wc = w.contiguous().to(x.scalar_type());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bn_backward", [&] {
    const scalar_t* yp = y.has_value() ? y->data_ptr<scalar_t>() : nullptr;
    bn_backward_impl<scalar_t>(gy.data_ptr<scalar_t>(), yp, x.data_ptr<scalar_t>(),
                               wc.data_ptr<scalar_t>(), mean.data_ptr<scalar_t>(),
                               invstd.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>(),
                               dw.data_ptr<scalar_t>(), db.data_ptr<scalar_t>(), a);
  });
  return {dx, dw, db};
}

// ---- depth-wise 3x3 convolution, stride 1, padding 1, one filter per channel ----
//
// On (N, C, H, W) tensors whose H x W planes are contiguous: NCHW, or the channel-major
// storage (C, N, H, W) that the grouped path's folded runs hand each other (the next run's
// group products read it in place, so the layout copies each way disappear). Planes are
// visited in memory order (image by image, channel by channel within a thread's range of
// channels for NCHW; channel by channel, image by image for channel-major output): each
// pass streams its tensors once, where NCHW in channel-major order read 1 KiB runs C * HW
// apart that the hardware prefetcher missed. A plane is copied into the interior of a
// (H + 2) x (W + 2) buffer whose zero border is written once per thread (L1-resident:
// 1.1 KiB at 16x16), so every output reads its 3x3 neighbourhood without edge cases.
// Widths 8, 16 and 32 (the rungs') are compile-time: the row loops unroll into whole 8-wide
// vectors; other widths take the same code with a run-time width.

// Plane (i, ch) of an (N, C, H, W) tensor with contiguous planes: sn, sc its strides.
template <typename T>
struct Planes {
  T* p;
  int64_t sn, sc;
  T* at(int64_t i, int64_t ch) const { return p + i * sn + ch * sc; }
};

template <typename T>
Planes<T> planes(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.stride(3) == 1 && x.stride(2) == x.size(3),
              "depth-wise 3x3: an (N, C, H, W) tensor with contiguous H x W planes, got "
              "sizes ", x.sizes(), " strides ", x.strides());
  return {x.data_ptr<T>(), x.stride(0), x.stride(1)};
}

// Whole vectors, then the rest: a plain loop, GCC makes a memmove call of each row.
template <typename T, int WC>
IGC_INLINE void fill_interior(const T* __restrict__ x, T* __restrict__ p, int64_t h,
                              int64_t w_rt) {
  const int64_t w = WC ? WC : w_rt, pw = w + 2, wv = w - w % V;
  for (int64_t r = 0; r < h; ++r) {
    T* q = p + (r + 1) * pw + 1;
    for (int64_t j = 0; j < wv; j += V) std::memcpy(q + j, x + r * w + j, sizeof(Vec<T>));
    for (int64_t j = wv; j < w; ++j) q[j] = x[r * w + j];
  }
}

// One output plane: the padded input plane p convolved with kc, minus s.
template <typename T, int WC>
IGC_INLINE void conv_plane(const T* __restrict__ p, const T* kc, T s, T* __restrict__ yp,
                           int64_t h, int64_t w_rt) {
  const int64_t w = WC ? WC : w_rt, pw = w + 2;
  for (int64_t r = 0; r < h; ++r) {
    const T* r0 = p + r * pw;
    const T* r1 = r0 + pw;
    const T* r2 = r1 + pw;
    T* o = yp + r * w;
    for (int64_t j = 0; j < w; ++j)
      o[j] = kc[0] * r0[j] + kc[1] * r0[j + 1] + kc[2] * r0[j + 2] + kc[3] * r1[j] +
             kc[4] * r1[j + 1] + kc[5] * r1[j + 2] + kc[6] * r2[j] + kc[7] * r2[j + 1] +
             kc[8] * r2[j + 2] - s;
  }
}

// Whether planes (i, ch) of y lie channel by channel in memory.
template <typename T>
IGC_INLINE bool channel_major_order(const Planes<T>& y) {
  return y.sc > y.sn;
}

// The mean of channel ch's first m output planes (float sums of a plane, in double across
// planes), subtracted from them; shift[ch] the value subtracted.
template <typename T>
IGC_INLINE T centre_planes(const Planes<T>& y, int64_t ch, int64_t m, int64_t hw,
                           double* shift) {
  double sum = 0;
  for (int64_t i = 0; i < m; ++i) {
    const T* q = y.at(i, ch);
    Vec<T> a = {};
    const int64_t hv = hw - hw % V;
    for (int64_t j = 0; j < hv; j += V) a += load_vec(q + j);
    T t = igc::lane_sum<T>(a);
    for (int64_t j = hv; j < hw; ++j) t += q[j];
    sum += double(t);
  }
  const T s = T(sum / double(m * hw));
  for (int64_t i = 0; i < m; ++i) {
    T* q = y.at(i, ch);
    for (int64_t j = 0; j < hw; ++j) q[j] -= s;
  }
  shift[ch] = double(s);
  return s;
}

// y[i, ch] = x[i, ch] (*) k[ch] for channels [c0, c1) of every image; flip: the kernel
// rotated by 180 degrees (the input gradient is the output gradient convolved with it).
// centre (channel-major y only): shift[ch] = the mean of the first `centre` images'
// outputs of channel ch, subtracted from all (a constant that keeps the next Gram matrix
// exact in float32; search_space/bn_fold.py, cancellation), taken while they are in L1.
template <typename T, int WC>
IGC_CLONES void dw_forward_planes(Planes<const T> x, const T* k, Planes<T> y, bool cm,
                                  int64_t n, int64_t h, int64_t w_rt, int64_t c0, int64_t c1,
                                  bool flip, int64_t centre, double* shift,
                                  T* __restrict__ p) {
  const int64_t w = WC ? WC : w_rt, hw = h * w;
  // (plain loops, no lambdas: a lambda GCC keeps out of line is compiled for the baseline)
  const int64_t outer = cm ? c1 - c0 : n, inner = cm ? n : c1 - c0;
  for (int64_t a = 0; a < outer; ++a) {
    T s = 0;
    for (int64_t b = 0; b < inner; ++b) {
      const int64_t i = cm ? b : a, ch = cm ? c0 + a : c0 + b;
      T kc[9];
      for (int t = 0; t < 9; ++t) kc[t] = k[ch * 9 + (flip ? 8 - t : t)];
      if (cm && centre && i == centre) s = centre_planes(y, ch, centre, hw, shift);
      fill_interior<T, WC>(x.at(i, ch), p, h, w);
      conv_plane<T, WC>(p, kc, s, y.at(i, ch), h, w);
    }
    if (cm && centre && centre == n) centre_planes(y, c0 + a, centre, hw, shift);
  }
}

// Adds one plane's sum of gy * (x shifted by tap t) to acc[t]'s V lanes (in double): nine
// vector accumulators over the plane's rows, each row V outputs at a time, the last
// w % V outputs into the low lanes.
template <typename T, int WC>
IGC_INLINE void plane_taps(const T* __restrict__ g, const T* __restrict__ p, int64_t h,
                           int64_t w_rt, double* acc) {
  const int64_t w = WC ? WC : w_rt, pw = w + 2, wv = w - w % V;
  Vec<T> a[9] = {};
  for (int64_t r = 0; r < h; ++r) {
    const T* gr = g + r * w;
    for (int64_t j = 0; j < wv; j += V) {
      const Vec<T> gv = load_vec(gr + j);
      for (int t = 0; t < 9; ++t) a[t] += gv * load_vec(p + (r + t / 3) * pw + t % 3 + j);
    }
    for (int64_t j = wv; j < w; ++j)
      for (int t = 0; t < 9; ++t) a[t][j - wv] += gr[j] * p[(r + t / 3) * pw + t % 3 + j];
  }
  // lane by lane (vcvtps2pd, vaddpd): a 64-byte double vector went through the stack
  for (int t = 0; t < 9; ++t) {
    T lanes[V];
    std::memcpy(lanes, &a[t], sizeof lanes);
    for (int64_t l = 0; l < V; ++l) acc[t * V + l] += double(lanes[l]);
  }
}

// dk[ch, t] = sum over images and pixels of gy * (x shifted by tap t), channels [c0, c1):
// float lanes over a plane, double lanes across planes, one reduction per channel; planes
// in gy's memory order.
// GCC's predictive commoning kept the rows one output row shares with the next in
// registers across rows, spilling the nine accumulators; off here, a row of 16 is 18 FMAs.
template <typename T, int WC>
IGC_CLONES __attribute__((optimize("no-predictive-commoning"))) void dw_weight_planes(
    Planes<const T> gy, Planes<const T> x, T* dk, int64_t n, int64_t h, int64_t w_rt,
    int64_t c0, int64_t c1, T* __restrict__ p, double* acc) {
  const int64_t w = WC ? WC : w_rt;
  const bool cm = channel_major_order(gy);
  const int64_t outer = cm ? c1 - c0 : n, inner = cm ? n : c1 - c0;
  for (int64_t a = 0; a < outer; ++a)
    for (int64_t b = 0; b < inner; ++b) {
      const int64_t i = cm ? b : a, ch = cm ? c0 + a : c0 + b;
      fill_interior<T, WC>(x.at(i, ch), p, h, w);
      plane_taps<T, WC>(gy.at(i, ch), p, h, w, acc + (ch - c0) * 9 * V);
    }
  for (int64_t ch = c0; ch < c1; ++ch)
    for (int t = 0; t < 9; ++t) {
      double s = 0;
      for (int64_t l = 0; l < V; ++l) s += acc[((ch - c0) * 9 + t) * V + l];
      dk[ch * 9 + t] = T(s);
    }
}

// Calls f with the compile-time width of w (8, 16, 32; 0: the run-time width).
template <typename F>
void with_width(int64_t w, F&& f) {
  if (w == 8) f(std::integral_constant<int, 8>{});
  else if (w == 16) f(std::integral_constant<int, 16>{});
  else if (w == 32) f(std::integral_constant<int, 32>{});
  else f(std::integral_constant<int, 0>{});
}

// (y, shift): y = x (*) k per channel (flip: k rotated by 180 degrees), a new tensor,
// channel-major (C, N, H, W) storage seen as (N, C, H, W) where cm_out, else NCHW; centre
// (channel-major only): y minus shift (C,) float64, the mean of each channel's first
// min(N, 8) images' outputs (else shift is empty). x: any layout with contiguous planes.
std::vector<at::Tensor> dw_conv(const at::Tensor& x, const at::Tensor& k, bool flip,
                                bool cm_out, bool centre) {
  TORCH_CHECK(k.numel() == x.size(1) * 9, "dw_conv: a (C, 1, 3, 3) kernel for C = ",
              x.size(1), " channels, got ", k.sizes());
  TORCH_CHECK(!centre || cm_out, "dw_conv: centre needs the channel-major output");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  at::Tensor y = cm_out ? at::empty({c, n, h, w}, x.options()).permute({1, 0, 2, 3})
                        : at::empty({n, c, h, w}, x.options());
  at::Tensor kc = k.contiguous().to(x.scalar_type());
  const int64_t m = centre ? std::min<int64_t>(n, 8) : 0;
  at::Tensor shift = at::empty({centre ? c : 0}, x.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dw_conv", [&] {
    const Planes<scalar_t> xp = planes<scalar_t>(x), yp = planes<scalar_t>(y);
    const Planes<const scalar_t> xc{xp.p, xp.sn, xp.sc};
    const scalar_t* kp = kc.data_ptr<scalar_t>();
    double* sp = shift.data_ptr<double>();
    at::parallel_for(0, c, 1, [&](int64_t c0, int64_t c1) {
      std::vector<scalar_t> pad((h + 2) * (w + 2), scalar_t(0));  // the border stays zero
      with_width(w, [&](auto wc) {
        dw_forward_planes<scalar_t, decltype(wc)::value>(xc, kp, yp, cm_out, n, h, w, c0, c1,
                                                         flip, m, sp, pad.data());
      });
    });
  });
  return {y, shift};
}

// NCHW in and out (the interface of earlier builds, which benchmarks/depthwise.py times).
at::Tensor dw_forward(const at::Tensor& x, const at::Tensor& k, bool flip) {
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous(), "dw_forward: a contiguous NCHW tensor");
  return dw_conv(x, k, flip, false, false)[0];
}

// dk (C, 1, 3, 3): the weight gradient from gy and x, each in any layout with contiguous
// planes.
at::Tensor dw_weight(const at::Tensor& gy, const at::Tensor& x) {
  TORCH_CHECK(gy.sizes() == x.sizes(), "dw_weight: gy ", gy.sizes(), " against x ",
              x.sizes());
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  at::Tensor dk = at::empty({c, 1, 3, 3}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dw_weight", [&] {
    const Planes<scalar_t> gp = planes<scalar_t>(gy), xp = planes<scalar_t>(x);
    const Planes<const scalar_t> gc{gp.p, gp.sn, gp.sc}, xc{xp.p, xp.sn, xp.sc};
    scalar_t* dkp = dk.data_ptr<scalar_t>();
    at::parallel_for(0, c, 1, [&](int64_t c0, int64_t c1) {
      std::vector<scalar_t> pad((h + 2) * (w + 2), scalar_t(0));  // the border stays zero
      // V double lanes per tap and channel (not a vector of Vec: GCC drops a template
      // argument's alignment, and the aligned loads of a 16-byte aligned buffer fault)
      std::vector<double> acc((c1 - c0) * 9 * V, 0.0);
      with_width(w, [&](auto wc) {
        dw_weight_planes<scalar_t, decltype(wc)::value>(gc, xc, dkp, n, h, w, c0, c1,
                                                        pad.data(), acc.data());
      });
    });
  });
  return dk;
}

}  // namespace

void register_group_gemm(pybind11::module& m);  // group_gemm.cpp

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bn_forward", &bn_forward, "BatchNorm (batch statistics) + shuffle + [ReLU]");
  m.def("bn_backward", &bn_backward, "its backward");
  m.def("dw_forward", &dw_forward, "depth-wise 3x3 convolution, stride 1, padding 1");
  m.def("dw_conv", &dw_conv, "depth-wise 3x3 convolution, any plane layout in, NCHW or "
        "channel-major out, optionally centred");
  m.def("dw_weight", &dw_weight, "its weight gradient");
  register_group_gemm(m);
}
