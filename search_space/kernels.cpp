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
#include <vector>

// The hot loops are compiled twice, for x86-64-v3 (AVX2, FMA) and the baseline, and the
// loader picks one per machine (GCC's target_clones): the flags stay portable, so a build
// cached on one machine runs on any x86-64, and a v3 machine gets 8-wide vectors.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define IGC_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define IGC_CLONES
#endif

namespace {

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

// ---- depth-wise 3x3 convolution, NCHW, stride 1, padding 1, one filter per channel ----

// The (H + 2) x (W + 2) zero-padded copy of one plane: every output pixel then reads its
// 3x3 neighbourhood without edge cases, and the loops over a row vectorise.
template <typename T>
void pad_plane(const T* x, int64_t h, int64_t w, T* p) {
  std::fill(p, p + (h + 2) * (w + 2), T(0));
  for (int64_t i = 0; i < h; ++i)
    std::copy(x + i * w, x + (i + 1) * w, p + (i + 1) * (w + 2) + 1);
}

template <typename T>
IGC_CLONES void dw_plane(const T* __restrict__ p, const T* k, int64_t h, int64_t w, T* __restrict__ y) {
  const int64_t pw = w + 2;
  for (int64_t i = 0; i < h; ++i) {
    const T* r0 = p + i * pw;
    const T* r1 = r0 + pw;
    const T* r2 = r1 + pw;
    T* o = y + i * w;
    for (int64_t j = 0; j < w; ++j)
      o[j] = k[0] * r0[j] + k[1] * r0[j + 1] + k[2] * r0[j + 2] + k[3] * r1[j] +
             k[4] * r1[j + 1] + k[5] * r1[j + 2] + k[6] * r2[j] + k[7] * r2[j + 1] +
             k[8] * r2[j + 2];
  }
}

// y[n, c] = x[n, c] (*) k[c] for all planes; flip: the kernel rotated by 180 degrees (the
// input gradient is the output gradient convolved with the flipped kernel).
template <typename T>
void dw_forward_impl(const T* x, const T* k, T* y, int64_t n, int64_t c, int64_t h, int64_t w,
                     bool flip) {
  at::parallel_for(0, c, 1, [&](int64_t c0, int64_t c1) {
    std::vector<T> pad((h + 2) * (w + 2));
    T kc[9];
    for (int64_t ch = c0; ch < c1; ++ch) {
      for (int t = 0; t < 9; ++t) kc[t] = k[ch * 9 + (flip ? 8 - t : t)];
      for (int64_t i = 0; i < n; ++i) {
        const int64_t o = (i * c + ch) * h * w;
        pad_plane(x + o, h, w, pad.data());
        dw_plane(pad.data(), kc, h, w, y + o);
      }
    }
  });
}

// sum over one plane of gy * q, q a W-wide window sliding down the padded plane: L lanes
// per row chunk, kept in registers down the rows, then into double.
template <typename T>
IGC_CLONES double window_dot(const T* g, const T* q, int64_t h, int64_t w, int64_t pw) {
  double s = 0;
  for (int64_t j0 = 0; j0 < w; j0 += L) {
    const int64_t len = std::min<int64_t>(L, w - j0);
    T a[L] = {};
    if (len == L) {
      for (int64_t r = 0; r < h; ++r)
        for (int k = 0; k < L; ++k) a[k] += g[r * w + j0 + k] * q[r * pw + j0 + k];
    } else {
      for (int64_t r = 0; r < h; ++r)
        for (int64_t k = 0; k < len; ++k) a[k] += g[r * w + j0 + k] * q[r * pw + j0 + k];
    }
    for (int k = 0; k < L; ++k) s += a[k];
  }
  return s;
}

// dk[c, t] = sum over images and pixels of gy * (x shifted by tap t).
template <typename T>
void dw_weight_impl(const T* gy, const T* x, T* dk, int64_t n, int64_t c, int64_t h,
                    int64_t w) {
  at::parallel_for(0, c, 1, [&](int64_t c0, int64_t c1) {
    std::vector<T> pad((h + 2) * (w + 2));
    const int64_t pw = w + 2;
    for (int64_t ch = c0; ch < c1; ++ch) {
      double sum[9] = {};
      for (int64_t i = 0; i < n; ++i) {
        const int64_t o = (i * c + ch) * h * w;
        pad_plane(x + o, h, w, pad.data());
        for (int t = 0; t < 9; ++t)
          sum[t] += window_dot(gy + o, pad.data() + (t / 3) * pw + t % 3, h, w, pw);
      }
      for (int t = 0; t < 9; ++t) dk[ch * 9 + t] = T(sum[t]);
    }
  });
}

at::Tensor dw_forward(const at::Tensor& x, const at::Tensor& k, bool flip) {
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous() && k.numel() == x.size(1) * 9,
              "dw_forward: shape");
  at::Tensor y = at::empty_like(x), kc = k.contiguous().to(x.scalar_type());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dw_forward", [&] {
    dw_forward_impl<scalar_t>(x.data_ptr<scalar_t>(), kc.data_ptr<scalar_t>(),
                              y.data_ptr<scalar_t>(), x.size(0), x.size(1), x.size(2),
                              x.size(3), flip);
  });
  return y;
}

at::Tensor dw_weight(const at::Tensor& gy, const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous() && gy.is_contiguous() &&
              gy.sizes() == x.sizes(), "dw_weight: shape");
  at::Tensor dk = at::empty({x.size(1), 1, 3, 3}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dw_weight", [&] {
    dw_weight_impl<scalar_t>(gy.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                             dk.data_ptr<scalar_t>(), x.size(0), x.size(1), x.size(2),
                             x.size(3));
  });
  return dk;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bn_forward", &bn_forward, "BatchNorm (batch statistics) + shuffle + [ReLU]");
  m.def("bn_backward", &bn_backward, "its backward");
  m.def("dw_forward", &dw_forward, "depth-wise 3x3 convolution, stride 1, padding 1");
  m.def("dw_weight", &dw_weight, "its weight gradient");
}
