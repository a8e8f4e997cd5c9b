// Batched products of small matrices over long pixel rows: the group 1x1 convolutions of
// the grouped path with their BatchNorms folded in (search_space/bn_fold.py; issue 24).
//
// Why hand-written: a group of an IGCV2 block is K = 2-32 channels over P = N*H*W pixels
// (16,384 at the cpu rung). For these shapes ATen's bmm took up to 2.5x the time of the
// loops below for the Gram matrix and 1.4-1.6x for the backward's dy x^T; the output
// products are about even (0.98-1.25x; one thread, batch 64, 16x16 and 32x32,
// benchmarks/group_gemm.py). Whole folded training steps ran 1.1-1.45x as fast.
//
// Two shapes, each operand a (G, R, P) batch with unit pixel stride and any group and row
// strides (a shuffled view is read in place):
//   nn:  Y[g] = W1[g] X1[g] (+ W2[g] X2[g]) + b[g] 1^T    (M x P out; W small, contiguous)
//   nt:  C[g] = A[g] B[g]^T, and A[g]'s row sums           (M x N out, reduced over P)
// nn keeps an MR x (NR vectors) block of outputs in registers while it walks the K inputs;
// nt keeps an MR x NR block of dot products over a run of CH pixels (in L1), in float, and
// adds each run's sums into double: more exact than one float sum over P, as bmm takes it.
// nt_masked is nt whose A it first writes, run by run, from a shuffled view through the
// ReLU's mask (a folded run's last step, backward: the gradient's unshuffle in no pass of
// its own).
//
// Tried and dropped: operands read in place through a table of row offsets, so that a run
// read its NCHW input (centred as read) and wrote its NCHW output (with the ReLU) with no
// layout copies: whole C = 144 and C = 156 training steps at 16x16 ran 0.75-0.86x as fast
// as these products with the copies kept (an NCHW row is a 1 KiB run C * HW apart).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "simd.h"

namespace {

using igc::lane_sum;
using igc::load_vec;
using igc::store_vec;
using igc::V;
using igc::Vec;

// A (G, R, P) operand: element (g, r, p) at p_[g * sg + r * sr + p].
template <typename T>
struct Mat {
  const T* p;
  int64_t sg, sr;
  const T* row(int64_t g, int64_t r) const { return p + g * sg + r * sr; }
};

template <typename T>
Mat<T> mat(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.stride(2) == 1, "group_gemm: a (G, R, P) operand with unit "
              "pixel stride, got sizes ", x.sizes(), " strides ", x.strides());
  return {x.data_ptr<T>(), x.stride(0), x.stride(1)};
}

// One term W[g] X[g] of an nn product: W contiguous (G, M, K).
template <typename T>
struct Term {
  const T* w;
  int64_t k;
  Mat<T> x;
};

// Where an nn product writes output row j (of G * M): row rows[j] of y (the identity
// without a table), with the ReLU where relu. A table writes the output already
// channel-shuffled (eq. 4's P_l), in the layout the next run reads: no copy of its own.
template <typename T>
struct Out {
  T* y;
  int64_t P;
  const int64_t* rows;
  bool relu;
  T* row(int64_t j) const { return y + (rows ? rows[j] : j) * P; }
};

// Pixels a panel spans: every block of output rows reads the panel's inputs while they are
// in cache. (Row block by row block over all P pixels, a 2-term product at 32x32, batch
// 64, read its 75 MB of inputs from memory twice: 37 ms against 22 ms.)
constexpr int64_t PANEL = 256;

// Input rows a group's product reads from which it prefetches (software prefetch, two
// streams a row): fewer the hardware prefetcher follows, and there the prefetches only
// cost (M = K = 2-4 products at 16,384 pixels ran 0.87-0.93x with them).
constexpr int64_t PF_ROWS = 8;

// Vectors of T in a 64-byte cache line: the unit of a software prefetch.
template <typename T>
constexpr int LINE_VECS = std::max<int>(1, 64 / (V * sizeof(T)));

// max(v, 0) lane by lane; NaN stays NaN, as torch.relu keeps it.
template <typename T>
IGC_INLINE Vec<T> relu_vec(const Vec<T>& v) {
  return v < Vec<T>{} ? Vec<T>{} : v;
}

// Outputs rows [m0, m0 + MR) x pixels [p0, p0 + NR * V) of group g.
template <typename T, int MR, int NR, bool PF>
IGC_INLINE void nn_block(const Term<T>* terms, int nterms, int64_t g, int64_t m0, int64_t M,
                         const T* b, const Out<T>& y, int64_t p0) {
  Vec<T> acc[MR][NR];
  for (int r = 0; r < MR; ++r) {
    const T bv = b ? b[g * M + m0 + r] : T(0);
    for (int j = 0; j < NR; ++j) acc[r][j] = Vec<T>{} + bv;
  }
  for (int t = 0; t < nterms; ++t) {
    const Term<T>& tm = terms[t];
    const T* w = tm.w + (g * M + m0) * tm.k;
    for (int64_t kk = 0; kk < tm.k; ++kk) {
      const T* xr = tm.x.row(g, kk) + p0;
      if (PF)
        for (int j = 0; j < NR; j += LINE_VECS<T>) __builtin_prefetch(xr + PANEL + j * V);
      Vec<T> xv[NR];
      for (int j = 0; j < NR; ++j) xv[j] = load_vec(xr + j * V);
      for (int r = 0; r < MR; ++r) {
        const T wv = w[r * tm.k + kk];
        for (int j = 0; j < NR; ++j) acc[r][j] += wv * xv[j];
      }
    }
  }
  for (int r = 0; r < MR; ++r) {
    T* yr = y.row(g * M + m0 + r) + p0;
    for (int j = 0; j < NR; ++j)
      store_vec(yr + j * V, y.relu ? relu_vec<T>(acc[r][j]) : acc[r][j]);
  }
}

// Rows [m0, m0 + MR) of group g over pixels [q0, q1): NR vectors at a time, then one
// vector, then the last pixels one by one.
template <typename T, int MR, int NR, bool PF>
IGC_INLINE void nn_rows(const Term<T>* terms, int nterms, int64_t g, int64_t m0, int64_t M,
                        const T* b, const Out<T>& y, int64_t q0, int64_t q1) {
  int64_t p0 = q0;
  for (; p0 + NR * V <= q1; p0 += NR * V)
    nn_block<T, MR, NR, PF>(terms, nterms, g, m0, M, b, y, p0);
  for (; p0 + V <= q1; p0 += V) nn_block<T, MR, 1, PF>(terms, nterms, g, m0, M, b, y, p0);
  for (; p0 < q1; ++p0)
    for (int r = 0; r < MR; ++r) {
      T s = b ? b[g * M + m0 + r] : T(0);
      for (int t = 0; t < nterms; ++t)
        for (int64_t kk = 0; kk < terms[t].k; ++kk)
          s += terms[t].w[(g * M + m0 + r) * terms[t].k + kk] * terms[t].x.row(g, kk)[p0];
      y.row(g * M + m0 + r)[p0] = y.relu && s < T(0) ? T(0) : s;
    }
}

// Output blocks of MR rows by NR vectors, NR from an accumulator budget ACC: 12 fit AVX2's
// 16 registers with the inputs and a broadcast weight (twelve rows by one vector, else two
// vectors), 24 fit AVX-512's 32 (NR = 24 / MR, at most 4). At M = K = 12 the wider blocks
// load a weight per two multiply-adds instead of one: the 1- and 2-term products ran
// 1.4-1.5x as fast on this EPYC (one thread, 1,024-16,384 pixels, docs/performance.md).
template <int ACC, int MR>
constexpr int nn_width() {
  return ACC == 12 ? (MR == 12 ? 1 : 2) : std::max(1, std::min(4, ACC / MR));
}

// Twelve rows, then six, then the rows left over (M % 6) in a block of their own height.
// (At K = 12 and 16 the twelve-row block, which reads each input vector once a panel, ran
// 1.0-1.4x the six-row blocks alone; one thread, batch 64, 16x16 and 32x32.) Copying each
// panel's inputs to a buffer first, rows apart by other than the tensor's 64-256 KiB, ran
// 0.8-0.9x as fast; prefetching the next panel's inputs instead (nn_block) ran the 2-term
// product at 16,384 pixels 1.3-1.5x as fast: each of its 24 input rows is a stream of its
// own, more than the hardware prefetcher follows.
template <typename T, int ACC, bool PF>
IGC_INLINE void nn_panel(const Term<T>* terms, int nterms, int64_t g, int64_t M, const T* b,
                         const Out<T>& y, int64_t q0, int64_t q1) {
  int64_t m0 = 0;
  for (; m0 + 12 <= M; m0 += 12)
    nn_rows<T, 12, nn_width<ACC, 12>(), PF>(terms, nterms, g, m0, M, b, y, q0, q1);
  for (; m0 + 6 <= M; m0 += 6)
    nn_rows<T, 6, nn_width<ACC, 6>(), PF>(terms, nterms, g, m0, M, b, y, q0, q1);
  switch (M - m0) {
    case 5: nn_rows<T, 5, nn_width<ACC, 5>(), PF>(terms, nterms, g, m0, M, b, y, q0, q1); break;
    case 4: nn_rows<T, 4, nn_width<ACC, 4>(), PF>(terms, nterms, g, m0, M, b, y, q0, q1); break;
    case 3: nn_rows<T, 3, nn_width<ACC, 3>(), PF>(terms, nterms, g, m0, M, b, y, q0, q1); break;
    case 2: nn_rows<T, 2, nn_width<ACC, 2>(), PF>(terms, nterms, g, m0, M, b, y, q0, q1); break;
    case 1: nn_rows<T, 1, nn_width<ACC, 1>(), PF>(terms, nterms, g, m0, M, b, y, q0, q1); break;
    default: break;
  }
}

// Every panel of groups [g0, g1), in blocks from the budget ACC.
template <typename T, int ACC>
IGC_INLINE void nn_panels(const Term<T>* terms, int nterms, int64_t g0, int64_t g1, int64_t M,
                          const T* b, const Out<T>& y, int64_t P) {
  int64_t k = 0;
  for (int t = 0; t < nterms; ++t) k += terms[t].k;
  const bool pf = k >= PF_ROWS;
  for (int64_t g = g0; g < g1; ++g)
    for (int64_t q0 = 0; q0 < P; q0 += PANEL) {
      const int64_t q1 = std::min(P, q0 + PANEL);
      if (pf)
        nn_panel<T, ACC, true>(terms, nterms, g, M, b, y, q0, q1);
      else
        nn_panel<T, ACC, false>(terms, nterms, g, M, b, y, q0, q1);
    }
}

// 12 accumulators: AVX2 machines, the baseline, and x86-64-v4 machines where rows are
// longer (its clone: a 2-term product's 12 x 1 block with its 24 inputs' pointers fits 32
// registers, not 16).
template <typename T>
IGC_CLONES_V4 void nn_groups(const Term<T>* terms, int nterms, int64_t g0, int64_t g1, int64_t M,
                          const T* b, const Out<T>& y, int64_t P) {
  nn_panels<T, 12>(terms, nterms, g0, g1, M, b, y, P);
}

// x86-64-v4 machines (igc::wide_registers()): 24, where rows span at most WIDE_ROW_BYTES.
// (At 65,536 pixels, rows of 256 KiB streamed from memory, the 12 x 2 blocks ran the 2-term
// product 0.8x the 12 x 1 ones, with the prefetch as without it; at 16,384, 1.1-1.2x.)
constexpr int64_t WIDE_ROW_BYTES = 64 << 10;
template <typename T>
IGC_TARGET_V4 void nn_groups_wide(const Term<T>* terms, int nterms, int64_t g0, int64_t g1,
                                  int64_t M, const T* b, const Out<T>& y, int64_t P) {
  nn_panels<T, 24>(terms, nterms, g0, g1, M, b, y, P);
}

// Pixels a run of nt's float sums covers before they are added into double.
constexpr int64_t CH = 256;
// Pixels from which the cross products prefetch (nt_groups).
constexpr int64_t PF_PIXELS = 8192;

// c[r, j] += sum over the run's len pixels of a[r] * b[j], rows r < MR, j < NR; with PF,
// prefetching the rows two runs ahead.
template <typename T, int MR, int NR, bool PF>
IGC_INLINE void nt_block(const T* a, int64_t sa, const T* b, int64_t sb, int64_t len,
                         double* c, int64_t ldc) {
  Vec<T> acc[MR][NR] = {};
  const int64_t lv = len - len % V;
  for (int64_t p = 0; p < lv; p += V) {
    if (PF && p % (LINE_VECS<T> * V) == 0) {
      for (int r = 0; r < MR; ++r) __builtin_prefetch(a + r * sa + p + 2 * CH);
      for (int j = 0; j < NR; ++j) __builtin_prefetch(b + j * sb + p + 2 * CH);
    }
    Vec<T> av[MR];
    for (int r = 0; r < MR; ++r) av[r] = load_vec(a + r * sa + p);
    for (int j = 0; j < NR; ++j) {
      const Vec<T> bv = load_vec(b + j * sb + p);
      for (int r = 0; r < MR; ++r) acc[r][j] += av[r] * bv;
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) {
      T s = lane_sum<T>(acc[r][j]);
      for (int64_t p = lv; p < len; ++p) s += a[r * sa + p] * b[j * sb + p];
      c[r * ldc + j] += double(s);
    }
}

// Rows [m, m + MR) of A against rows [n0, N) of B, three at a time.
template <typename T, int MR, bool PF>
IGC_INLINE void nt_rows(const T* a, int64_t sa, const T* b, int64_t sb, int64_t n0,
                        int64_t N, int64_t len, double* c, int64_t ldc) {
  constexpr int NR = 3;
  int64_t n = n0;
  for (; n + NR <= N; n += NR) nt_block<T, MR, NR, PF>(a, sa, b + n * sb, sb, len, c + n, ldc);
  for (; n < N; ++n) nt_block<T, MR, 1, PF>(a, sa, b + n * sb, sb, len, c + n, ldc);
}

// One run of CH pixels of group g: every MR-row block of A against B.
template <typename T, bool PF>
IGC_INLINE void nt_run(const Mat<T>& A, const Mat<T>& B, int64_t g, int64_t p0, int64_t len,
                       int64_t M, int64_t N, bool sym, double* cg) {
  constexpr int MR = 3;
  for (int64_t m = 0; m < M; m += MR) {
    const T* a = A.row(g, m) + p0;
    const T* b = B.row(g, 0) + p0;
    const int64_t n0 = sym ? m : 0;
    switch (std::min<int64_t>(MR, M - m)) {
      case 3: nt_rows<T, 3, PF>(a, A.sr, b, B.sr, n0, N, len, cg + m * N, N); break;
      case 2: nt_rows<T, 2, PF>(a, A.sr, b, B.sr, n0, N, len, cg + m * N, N); break;
      default: nt_rows<T, 1, PF>(a, A.sr, b, B.sr, n0, N, len, cg + m * N, N); break;
    }
  }
}

// One run of group g with A's row sums: the run is in L1 after the products.
template <typename T>
IGC_INLINE void nt_run_sums(const Mat<T>& A, const Mat<T>& B, int64_t g, int64_t p0,
                            int64_t len, int64_t M, int64_t N, bool sym, bool pf, double* c,
                            double* rsum) {
  double* cg = c + g * M * N;
  if (pf)
    nt_run<T, true>(A, B, g, p0, len, M, N, sym, cg);
  else
    nt_run<T, false>(A, B, g, p0, len, M, N, sym, cg);
  for (int64_t r = 0; r < M; ++r) {
    const T* ar = A.row(g, r) + p0;
    Vec<T> s = {};
    const int64_t lv = len - len % V;
    for (int64_t p = 0; p < lv; p += V) s += load_vec(ar + p);
    T t = lane_sum<T>(s);
    for (int64_t p = lv; p < len; ++p) t += ar[p];
    rsum[g * M + r] += double(t);
  }
}

// Prefetching two runs ahead ran the cross products at 16,384 pixels about 1.15x as fast
// (each of their 24 rows a stream of its own), and ran 0.9x at 4,096 and the Gram matrix
// (half the rows): so only there (PF_PIXELS, PF_ROWS).
IGC_INLINE bool nt_prefetches(int64_t M, int64_t N, int64_t P, bool sym) {
  return !sym && P >= PF_PIXELS && M + N >= PF_ROWS;
}

// sym (A is B): only the blocks on and above the diagonal, mirrored at the end.
template <typename T>
IGC_CLONES_V4 void nt_groups(Mat<T> A, Mat<T> B, int64_t g0, int64_t g1, int64_t M,
                             int64_t N, int64_t P, bool sym, double* c, double* rsum) {
  const bool pf = nt_prefetches(M, N, P, sym);
  for (int64_t g = g0; g < g1; ++g) {
    for (int64_t p0 = 0; p0 < P; p0 += CH)
      nt_run_sums(A, B, g, p0, std::min(CH, P - p0), M, N, sym, pf, c, rsum);
    if (sym) {
      double* cg = c + g * M * N;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < i; ++j) cg[i * N + j] = cg[j * N + i];
    }
  }
}

// A (R1, R2, P) operand read as rows j = i1 * R2 + i2: element (j, p) at
// p_[(j / R2) * s1 + (j % R2) * s2 + p] (a channel shuffle's inverse, as a view).
template <typename T>
struct Rows3 {
  const T* p;
  int64_t r2, s1, s2;
  const T* row(int64_t j) const { return p + (j / r2) * s1 + (j % r2) * s2; }
};

// Pixels of a group's rows nt_masked writes before it multiplies them: 16 KiB of float a
// row, so the rows just written (K = 12: 192 KiB) are in L2 when the products read them.
constexpr int64_t MASK_CHUNK = 16 * CH;

// group_nt(A, B) of A = src [where mask > 0], a chunk at a time: each chunk of a group's
// rows of A is written (to a, contiguous (G, M, P)), row by row (three streams), and
// multiplied while it is in L2, so the backward's unshuffle with the ReLU's mask costs no
// pass of its own. (Run by run, 256 pixels of every row at once, it ran 0.85x the two
// passes: 36 streams.) Where mask <= 0 the gradient is 0, else it passes (NaN too):
// threshold_backward's rule. The products and sums are nt_groups' on the written a,
// operation for operation.
template <typename T>
IGC_CLONES_V4 void nt_masked_groups(Rows3<T> src, const Rows3<T>* mask, T* a, Mat<T> B,
                                    int64_t g0, int64_t g1, int64_t M, int64_t N, int64_t P,
                                    double* c, double* rsum) {
  const bool pf = nt_prefetches(M, N, P, false);
  const Mat<T> A{a, M * P, P};
  for (int64_t g = g0; g < g1; ++g)
    for (int64_t q0 = 0; q0 < P; q0 += MASK_CHUNK) {
      const int64_t q1 = std::min(P, q0 + MASK_CHUNK);
      const int64_t lv = q0 + (q1 - q0) - (q1 - q0) % V;
      for (int64_t r = 0; r < M; ++r) {
        const int64_t j = g * M + r;
        const T* sr = src.row(j);
        const T* mr = mask ? mask->row(j) : nullptr;
        T* dr = a + j * P;
        for (int64_t p = q0; p < lv; p += V) {
          const Vec<T> v = load_vec(sr + p);
          store_vec(dr + p, mr ? (load_vec(mr + p) <= Vec<T>{} ? Vec<T>{} : v) : v);
        }
        for (int64_t p = lv; p < q1; ++p) dr[p] = mr && mr[p] <= T(0) ? T(0) : sr[p];
      }
      for (int64_t p0 = q0; p0 < q1; p0 += CH)
        nt_run_sums(A, B, g, p0, std::min(CH, q1 - p0), M, N, false, pf, c, rsum);
    }
}

// An nn product into y and the Gram matrix (with sums) of a (Ga, Ma, P) view A of y, panel
// by panel: every group's outputs of a panel, then every view group's run of the same
// pixels while they are in cache. Each output and each run's float sums are computed as
// group_nn and group_nt compute them, in the same order (a run is a panel), so the values
// are theirs bit for bit; the pass that would read y back (the next folded step's Gram
// matrix) is gone. (The backward's like of it, the dx product with the step before's cross
// product, read four operands' 576 rows a panel and ran 0.9-0.75x the two passes.)
static_assert(PANEL == CH, "nn_gram: a panel of the nn product is a run of the nt product");

template <typename T, int ACC>
IGC_INLINE void nn_gram_panels(const Term<T>* terms, int nterms, int64_t G, int64_t M,
                               const T* b, const Out<T>& y, int64_t P, const Mat<T>& A,
                               int64_t Ga, int64_t Ma, double* c, double* rsum) {
  int64_t k = 0;
  for (int t = 0; t < nterms; ++t) k += terms[t].k;
  const bool pf = k >= PF_ROWS, pfn = nt_prefetches(Ma, Ma, P, true);
  for (int64_t q0 = 0; q0 < P; q0 += PANEL) {
    const int64_t q1 = std::min(P, q0 + PANEL);
    for (int64_t g = 0; g < G; ++g) {
      if (pf)
        nn_panel<T, ACC, true>(terms, nterms, g, M, b, y, q0, q1);
      else
        nn_panel<T, ACC, false>(terms, nterms, g, M, b, y, q0, q1);
    }
    for (int64_t h = 0; h < Ga; ++h) nt_run_sums(A, A, h, q0, q1 - q0, Ma, Ma, true, pfn, c, rsum);
  }
  for (int64_t h = 0; h < Ga; ++h) {
    double* ch = c + h * Ma * Ma;
    for (int64_t i = 0; i < Ma; ++i)
      for (int64_t j = 0; j < i; ++j) ch[i * Ma + j] = ch[j * Ma + i];
  }
}

template <typename T>
IGC_CLONES_V4 void nn_gram(const Term<T>* terms, int nterms, int64_t G, int64_t M, const T* b,
                           const Out<T>& y, int64_t P, Mat<T> A, int64_t Ga, int64_t Ma,
                           double* c, double* rsum) {
  nn_gram_panels<T, 12>(terms, nterms, G, M, b, y, P, A, Ga, Ma, c, rsum);
}

template <typename T>
IGC_TARGET_V4 void nn_gram_wide(const Term<T>* terms, int nterms, int64_t G, int64_t M,
                                const T* b, const Out<T>& y, int64_t P, Mat<T> A, int64_t Ga,
                                int64_t Ma, double* c, double* rsum) {
  nn_gram_panels<T, 24>(terms, nterms, G, M, b, y, P, A, Ga, Ma, c, rsum);
}

// Y = W1 X1 (+ W2 X2) (+ b) [ReLU]: W (G, M, K) any strides (made contiguous), X (G, K, P)
// with unit pixel stride, b (G, M); Y a new contiguous (G, M, P) of X1's type, its flat row
// rows[g * M + m] holding output (g, m) where rows (int64, a permutation of G * M) is given.
void check_nn(const at::Tensor& w1, const at::Tensor& x1, const c10::optional<at::Tensor>& w2,
              const c10::optional<at::Tensor>& x2, const c10::optional<at::Tensor>& b) {
  const int64_t G = x1.size(0), M = w1.size(1), P = x1.size(2);
  TORCH_CHECK(w1.dim() == 3 && w1.size(0) == G && w1.size(2) == x1.size(1),
              "group_nn: W1 (G, M, K) against X1 (G, K, P)");
  TORCH_CHECK(w2.has_value() == x2.has_value(), "group_nn: W2 and X2 together");
  if (w2) TORCH_CHECK(w2->dim() == 3 && w2->size(0) == G && w2->size(1) == M && x2->size(0) == G
                      && w2->size(2) == x2->size(1) && x2->size(2) == P,
                      "group_nn: W2 (G, M, K2) against X2 (G, K2, P)");
  if (b) TORCH_CHECK(b->numel() == G * M, "group_nn: b (G, M)");
}

// The operands of an nn product: its terms, their weights and the bias made contiguous in
// X1's type (kept alive here).
template <typename T>
struct NnArgs {
  at::Tensor ws[2], bc;
  Term<T> terms[2] = {};
  int nterms = 1;
  const T* b = nullptr;

  NnArgs(const at::Tensor& w1, const at::Tensor& x1, const c10::optional<at::Tensor>& w2,
         const c10::optional<at::Tensor>& x2, const c10::optional<at::Tensor>& bias) {
    const auto dt = x1.scalar_type();
    ws[0] = w1.to(dt).contiguous();
    terms[0] = {ws[0].data_ptr<T>(), w1.size(2), mat<T>(x1)};
    if (w2) {
      ws[1] = w2->to(dt).contiguous();
      terms[1] = {ws[1].data_ptr<T>(), w2->size(2), mat<T>(*x2)};
      nterms = 2;
    }
    if (bias) {
      bc = bias->to(dt).contiguous();
      b = bc.data_ptr<T>();
    }
  }
};

bool wide_rows(int64_t P, size_t bytes) {
  return igc::wide_registers() && P * int64_t(bytes) <= WIDE_ROW_BYTES;
}

at::Tensor group_nn(const at::Tensor& w1, const at::Tensor& x1,
                    const c10::optional<at::Tensor>& w2, const c10::optional<at::Tensor>& x2,
                    const c10::optional<at::Tensor>& b,
                    const c10::optional<at::Tensor>& rows, bool relu) {
  check_nn(w1, x1, w2, x2, b);
  const int64_t G = x1.size(0), M = w1.size(1), P = x1.size(2);
  if (rows) TORCH_CHECK(rows->scalar_type() == at::kLong && rows->is_contiguous() &&
                        rows->numel() == G * M &&
                        rows->min().item<int64_t>() >= 0 && rows->max().item<int64_t>() < G * M,
                        "group_nn: rows, G * M int64 row indices in [0, G * M)");
  at::Tensor y = at::empty({G, M, P}, x1.options());
  AT_DISPATCH_FLOATING_TYPES(x1.scalar_type(), "group_nn", [&] {
    const NnArgs<scalar_t> n(w1, x1, w2, x2, b);
    const Out<scalar_t> out{y.data_ptr<scalar_t>(), P,
                            rows ? rows->data_ptr<int64_t>() : nullptr, relu};
    at::parallel_for(0, G, 1, [&](int64_t g0, int64_t g1) {
      if (wide_rows(P, sizeof(scalar_t)))
        nn_groups_wide<scalar_t>(n.terms, n.nterms, g0, g1, M, n.b, out, P);
      else
        nn_groups<scalar_t>(n.terms, n.nterms, g0, g1, M, n.b, out, P);
    });
  });
  return y;
}

// (C, s): group_nn(W1, X1, W2, X2, b) written into out (a contiguous (G, M, P) of X1's type)
// and group_nt(A, A, true) of A, a (G', M', P) view of out with unit pixel stride: both bit
// for bit, in one pass over out (nn_gram_panels). One thread.
std::vector<at::Tensor> group_nn_gram(const at::Tensor& w1, const at::Tensor& x1,
                                      const c10::optional<at::Tensor>& w2,
                                      const c10::optional<at::Tensor>& x2,
                                      const c10::optional<at::Tensor>& b, const at::Tensor& out,
                                      const at::Tensor& a) {
  check_nn(w1, x1, w2, x2, b);
  const int64_t G = x1.size(0), M = w1.size(1), P = x1.size(2);
  TORCH_CHECK(out.sizes() == at::IntArrayRef({G, M, P}) && out.is_contiguous() &&
              out.scalar_type() == x1.scalar_type(),
              "group_nn_gram: out, a contiguous (G, M, P) of X1's type");
  TORCH_CHECK(a.dim() == 3 && a.size(2) == P && a.stride(2) == 1 && a.stride(0) >= 0 &&
              a.stride(1) >= 0 && a.scalar_type() == out.scalar_type(),
              "group_nn_gram: A, a (G', M', P) view of out with unit pixel stride");
  const int64_t first = (static_cast<const char*>(a.data_ptr()) -
                         static_cast<const char*>(out.data_ptr())) / int64_t(out.element_size());
  const int64_t last = first + (a.size(0) - 1) * a.stride(0) + (a.size(1) - 1) * a.stride(1) + P;
  TORCH_CHECK(a.numel() > 0 && first >= 0 && last <= out.numel(),
              "group_nn_gram: A, a (G', M', P) view of out with unit pixel stride");
  const int64_t Ga = a.size(0), Ma = a.size(1);
  const auto f64 = out.options().dtype(at::kDouble);
  at::Tensor c = at::zeros({Ga, Ma, Ma}, f64), s = at::zeros({Ga, Ma}, f64);
  AT_DISPATCH_FLOATING_TYPES(x1.scalar_type(), "group_nn_gram", [&] {
    const NnArgs<scalar_t> n(w1, x1, w2, x2, b);
    const Out<scalar_t> y{out.data_ptr<scalar_t>(), P, nullptr, false};
    const Mat<scalar_t> A = mat<scalar_t>(a);
    double *cp = c.data_ptr<double>(), *sp = s.data_ptr<double>();
    if (wide_rows(P, sizeof(scalar_t)))
      nn_gram_wide<scalar_t>(n.terms, n.nterms, G, M, n.b, y, P, A, Ga, Ma, cp, sp);
    else
      nn_gram<scalar_t>(n.terms, n.nterms, G, M, n.b, y, P, A, Ga, Ma, cp, sp);
  });
  return {c, s};
}

// (C, s): C[g] = A[g] B[g]^T (G, M, N) and s[g] = A[g] 1 (G, M), both float64; A (G, M, P)
// and B (G, N, P) with unit pixel stride. sym: B is A (C symmetric, half the work).
std::vector<at::Tensor> group_nt(const at::Tensor& a, const at::Tensor& b, bool sym) {
  const int64_t G = a.size(0), M = a.size(1), N = b.size(1), P = a.size(2);
  TORCH_CHECK(b.dim() == 3 && b.size(0) == G && b.size(2) == P && a.scalar_type() ==
              b.scalar_type(), "group_nt: A (G, M, P) against B (G, N, P), one dtype");
  TORCH_CHECK(!sym || (M == N && a.data_ptr() == b.data_ptr() && a.strides() == b.strides()),
              "group_nt: sym needs B to be A");
  const auto f64 = a.options().dtype(at::kDouble);
  at::Tensor c = at::zeros({G, M, N}, f64), s = at::zeros({G, M}, f64);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "group_nt", [&] {
    const Mat<scalar_t> A = mat<scalar_t>(a), B = mat<scalar_t>(b);
    double *cp = c.data_ptr<double>(), *sp = s.data_ptr<double>();
    at::parallel_for(0, G, 1, [&](int64_t g0, int64_t g1) {
      nt_groups<scalar_t>(A, B, g0, g1, M, N, P, sym, cp, sp);
    });
  });
  return {c, s};
}

}  // namespace

template <typename T>
Rows3<T> rows3(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.stride(2) == 1, "group_nt_masked: a (R1, R2, P) operand "
              "with unit pixel stride, got sizes ", x.sizes(), " strides ", x.strides());
  return {x.data_ptr<T>(), x.size(1), x.stride(0), x.stride(1)};
}

// (A, C, s): A the (R1, R2, P) src [zero where mask <= 0] as a new contiguous (G, M, P),
// G = groups, G * M = R1 * R2, its row j src's row (j / R2, j % R2); C[g] = A[g] B[g]^T and
// s[g] = A[g] 1 as group_nt(A, B, false) gives them, bit for bit. B (G, N, P); mask the
// shape of src, any strides with unit pixel stride.
std::vector<at::Tensor> group_nt_masked(const at::Tensor& src,
                                        const c10::optional<at::Tensor>& mask,
                                        const at::Tensor& b, int64_t groups) {
  const int64_t G = groups, P = src.size(2);
  TORCH_CHECK(src.dim() == 3 && G > 0 && (src.size(0) * src.size(1)) % G == 0,
              "group_nt_masked: src (R1, R2, P) with R1 * R2 rows in groups of ", groups);
  const int64_t M = src.size(0) * src.size(1) / G, N = b.size(1);
  TORCH_CHECK(b.dim() == 3 && b.size(0) == G && b.size(2) == P &&
              b.scalar_type() == src.scalar_type(),
              "group_nt_masked: B (G, N, P) of src's type against src's G groups");
  if (mask) TORCH_CHECK(mask->sizes() == src.sizes() && mask->scalar_type() ==
                        src.scalar_type(), "group_nt_masked: mask of src's shape and type");
  at::Tensor a = at::empty({G, M, P}, src.options());
  const auto f64 = src.options().dtype(at::kDouble);
  at::Tensor c = at::zeros({G, M, N}, f64), s = at::zeros({G, M}, f64);
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "group_nt_masked", [&] {
    const Rows3<scalar_t> sr = rows3<scalar_t>(src);
    const c10::optional<Rows3<scalar_t>> mr =
        mask ? c10::optional<Rows3<scalar_t>>(rows3<scalar_t>(*mask)) : c10::nullopt;
    const Mat<scalar_t> B = mat<scalar_t>(b);
    scalar_t* ap = a.data_ptr<scalar_t>();
    double *cp = c.data_ptr<double>(), *sp = s.data_ptr<double>();
    at::parallel_for(0, G, 1, [&](int64_t g0, int64_t g1) {
      nt_masked_groups<scalar_t>(sr, mr ? &*mr : nullptr, ap, B, g0, g1, M, N, P, cp, sp);
    });
  });
  return {a, c, s};
}

void register_group_gemm(pybind11::module& m) {
  m.def("group_nn", &group_nn, "Y = W1 X1 (+ W2 X2) (+ b) [ReLU], per group",
        pybind11::arg("w1"), pybind11::arg("x1"), pybind11::arg("w2"), pybind11::arg("x2"),
        pybind11::arg("b"), pybind11::arg("rows") = pybind11::none(),
        pybind11::arg("relu") = false);
  m.def("group_nt", &group_nt, "(A B^T, A 1) per group, float64");
  m.def("group_nn_gram", &group_nn_gram,
        "group_nn into out and the Gram matrix with sums of a view A of out, in one pass");
  m.def("group_nt_masked", &group_nt_masked,
        "(A, A B^T, A 1): A = src [where mask > 0] regrouped, contiguous; float64 products");
}
