// The vector types and compile flags shared by the C++ kernels (kernels.cpp, group_gemm.cpp;
// search_space/kernels.py builds them as one extension).
#pragma once

#include <cstdint>
#include <cstring>

// The hot loops are compiled twice, for x86-64-v3 (AVX2, FMA) and the baseline, and the
// loader picks one per machine (GCC's target_clones): the flags stay portable, so a build
// cached on one machine runs on any x86-64, and a v3 machine gets 8-wide vectors.
// IGC_CLONES_V4 adds x86-64-v4 (AVX-512): the vectors stay 8-wide, but its 32 registers
// hold a 2-term group product's blocks (group_gemm.cpp: 1.5x the v3 clone on this EPYC),
// where the depth-wise 3x3 loops ran 0.90-0.95x their v3 clone. IGC_TARGET_V4 compiles one
// function for x86-64-v4 alone, called where igc::wide_registers() says the machine has it
// (a loop whose blocks are sized for 32 registers, and another for 16).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define IGC_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define IGC_CLONES_V4 \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define IGC_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#else
#define IGC_CLONES
#define IGC_CLONES_V4
#define IGC_TARGET_V4
#endif

// Helpers are inlined into their callers' clones (a plain `inline` one GCC may keep out of
// line is compiled for the baseline only).
#define IGC_INLINE inline __attribute__((always_inline))

namespace igc {

// Whether this machine runs the x86-64-v4 clones, whose 32 vector registers hold blocks
// twice the size (group_gemm.cpp's nn blocks are chosen by it).
inline bool wide_registers() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  static const bool v4 = __builtin_cpu_supports("x86-64-v4");
  return v4;
#else
  return false;
#endif
}

// V lanes of T as one GCC vector (one AVX2 register of float in the x86-64-v3 clone, lowered
// to SSE pairs in the baseline one): accumulators declared as Vec stay in registers, which
// lane arrays indexed in a loop do not.
constexpr int64_t V = 8;
template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(V * sizeof(float))));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(V * sizeof(double))));
};
template <typename T>
using Vec = typename VecOf<T>::type;

template <typename T>
IGC_INLINE Vec<T> load_vec(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
IGC_INLINE void store_vec(T* p, const Vec<T>& v) {
  std::memcpy(p, &v, sizeof v);
}

// The sum of a vector's lanes.
template <typename T>
IGC_INLINE T lane_sum(const Vec<T>& v) {
  T lanes[V];
  std::memcpy(lanes, &v, sizeof lanes);
  T s = 0;
  for (int64_t l = 0; l < V; ++l) s += lanes[l];
  return s;
}

}  // namespace igc
