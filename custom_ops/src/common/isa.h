// Instruction set of the CPU neuron step loops: which one (KernelIsa, read when
// a kernel is created) and the dispatch to loops compiled for it (WithIsa,
// CallIsa). On x86-64 with GCC or Clang the loops are compiled for baseline
// x86-64, AVX2 and AVX-512 (the library itself targets baseline x86-64, so it
// runs on any such CPU); elsewhere only the baseline loops exist.
#pragma once

#include <type_traits>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ONNX2SNN_ISA_DISPATCH 1
#define ONNX2SNN_TARGET_AVX2 __attribute__((target("avx2")))
#define ONNX2SNN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))
#define ONNX2SNN_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define ONNX2SNN_ALWAYS_INLINE inline
#endif

namespace onnx2snn {

// The results are the same bit for bit in every one (the loops only add, compare,
// select and subtract, each correctly rounded in float32 whatever the vector width;
// no contraction, -ffp-contract=off).
enum class Isa { kBase, kAvx2, kAvx512 };

// The widest instruction set the CPU supports, lowered to the environment variable
// ONNX2SNN_KERNEL_ISA (base | avx2 | avx512) when it is set (for tests and
// benchmarks); throws std::invalid_argument for any other value of it. The CPU is
// probed once per process, the variable read at every call: kernels call it once,
// when they are created.
Isa KernelIsa();

// "base", "avx2" or "avx512".
const char* IsaName(Isa isa);

// Calls f(std::integral_constant<Isa, isa>{}) (kBase where there is no dispatch), so
// a kernel can instantiate its loops for the instruction set chosen at run time.
template <typename F>
void WithIsa(Isa isa, F&& f) {
#ifdef ONNX2SNN_ISA_DISPATCH
  if (isa == Isa::kAvx512) return f(std::integral_constant<Isa, Isa::kAvx512>{});
  if (isa == Isa::kAvx2) return f(std::integral_constant<Isa, Isa::kAvx2>{});
#endif
  (void)isa;
  f(std::integral_constant<Isa, Isa::kBase>{});
}

// CallIsa<kIsa, Body>(args...) runs Body{}(args...) compiled for the instruction set
// kIsa: Body is a struct whose operator() is ONNX2SNN_ALWAYS_INLINE, so its loops are
// inlined into, and vectorised for, one function per instruction set.
template <typename Body, typename... Args>
void CallBase(Args... args) {
  Body{}(args...);
}
#ifdef ONNX2SNN_ISA_DISPATCH
template <typename Body, typename... Args>
ONNX2SNN_TARGET_AVX2 void CallAvx2(Args... args) {
  Body{}(args...);
}
template <typename Body, typename... Args>
ONNX2SNN_TARGET_AVX512 void CallAvx512(Args... args) {
  Body{}(args...);
}
#endif

template <Isa kIsa, typename Body, typename... Args>
void CallIsa(Args... args) {
#ifdef ONNX2SNN_ISA_DISPATCH
  if constexpr (kIsa == Isa::kAvx512) {
    CallAvx512<Body>(args...);
    return;
  } else if constexpr (kIsa == Isa::kAvx2) {
    CallAvx2<Body>(args...);
    return;
  }
#endif
  CallBase<Body>(args...);
}

}  // namespace onnx2snn
