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

// Sums of (p[j] - shift) and of its square over one run, into double.
template <typename T>
void run_moments(const T* p, int64_t len, T shift, double& s1, double& s2) {
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
void run_grad_sums(const T* gy, const T* y, const T* x, int64_t len, T mean, double& sd,
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
      for (int64_t i = 0; i < s.n; ++i) run_moments(x + s.off(c, i), s.hw, shift, s1, s2);
      const double mu = s1 / m;
      const double v = std::max(s2 / m - mu * mu, 0.0);
      const double is = 1.0 / std::sqrt(v + a.eps);
      mean[c] = T(double(shift) + mu);
      var[c] = T(v);
      invstd[c] = T(is);
      const T mc = mean[c], sc = T(double(w[c]) * is), bc = b[c];
      const int64_t oc = shuffled(c, s.c, a.g);
      for (int64_t i = 0; i < s.n; ++i) {
        const T* p = x + s.off(c, i);
        T* q = y + a.dst.off(oc, i);
        if (a.relu) {
          for (int64_t j = 0; j < s.hw; ++j) q[j] = std::max((p[j] - mc) * sc + bc, T(0));
        } else {
          for (int64_t j = 0; j < s.hw; ++j) q[j] = (p[j] - mc) * sc + bc;
        }
      }
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
        const T* g = gy + o;
        const T* r = Masked ? y + o : y;
        const T* p = x + s.off(c, i);
        T* q = dx + s.off(c, i);
        for (int64_t j = 0; j < s.hw; ++j)
          q[j] = (masked<Masked>(g, r, j) - k1 - (p[j] - mc) * k2) * ws;
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

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bn_forward", &bn_forward, "BatchNorm (batch statistics) + shuffle + [ReLU]");
  m.def("bn_backward", &bn_backward, "its backward");
}
