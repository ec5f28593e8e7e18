// Running a CPU kernel's independent blocks: on the session's intra-op thread
// pool when the call is large enough, else (or when the runtime gives no pool)
// one after another on the calling thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "onnxruntime_cxx_api.h"

namespace onnx2snn {

// Below this many element-steps (T * elements per step) one thread is faster than dispatching.
constexpr int64_t kMinParallelWork = int64_t{1} << 16;

// Calls run_block(b) once for every b in [0, blocks), in any order and possibly
// concurrently (KernelContext_ParallelFor runs inline when the pool has one thread).
// work: the call's element-steps. run_block must be noexcept: it runs on pool threads.
template <typename F>
void RunBlocks(OrtKernelContext* context, int64_t blocks, int64_t work, const F& run_block) {
  static_assert(noexcept(run_block(int64_t{0})), "run_block runs on pool threads: it must be noexcept");
  if (blocks > 1 && work >= kMinParallelWork) {
    auto task = [](void* f, size_t block) { (*static_cast<const F*>(f))(static_cast<int64_t>(block)); };
    OrtStatus* status = Ort::GetApi().KernelContext_ParallelFor(context, task, static_cast<size_t>(blocks), 0,
                                                                const_cast<F*>(&run_block));
    if (status == nullptr) return;
    Ort::GetApi().ReleaseStatus(status);  // no pool available: do it here
  }
  for (int64_t b = 0; b < blocks; ++b) run_block(b);
}

}  // namespace onnx2snn
