// KernelIsa and IsaName (isa.h).
#include "common/isa.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace onnx2snn {

Isa KernelIsa() {
#ifdef ONNX2SNN_ISA_DISPATCH
  static const Isa best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
      return Isa::kAvx512;
    }
    return __builtin_cpu_supports("avx2") ? Isa::kAvx2 : Isa::kBase;
  }();
#else
  constexpr Isa best = Isa::kBase;
#endif
  const char* requested = std::getenv("ONNX2SNN_KERNEL_ISA");
  if (requested == nullptr) return best;
  const std::string r(requested);
  if (r != "base" && r != "avx2" && r != "avx512") {
    throw std::invalid_argument("environment variable ONNX2SNN_KERNEL_ISA must be base, avx2 or avx512 (or unset), "
                                "got '" + r + "'");
  }
  const Isa want = r == "base" ? Isa::kBase : (r == "avx2" ? Isa::kAvx2 : Isa::kAvx512);
  return want < best ? want : best;
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    default:
      return "base";
  }
}

}  // namespace onnx2snn
