// What the neuron ops IFNeuron, BIFNeuron and TSNeuron share, on the CPU and on
// CUDA: their common attributes, the check of their inputs (PrepareIFNeuron)
// and the validated call it yields (IFNeuronProblem). The ops' semantics are
// at the top of cpu/if_neuron.h, cpu/bif_neuron.h and cpu/ts_neuron.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/attributes.h"
#include "common/isa.h"
#include "onnxruntime_cxx_api.h"

namespace onnx2snn {

enum class ResetMode { kSubtract, kZero };

// The session-internal layout attributes of IFNeuron and BIFNeuron (cpu/if_neuron.h).
struct NeuronLayout {
  int64_t channel_block = 1;
  bool repeat_input = false;
};

// The attribute reset: "subtract" (default) or "zero".
ResetMode ReadReset(const KernelAttributes& attributes);
// The attributes channel_block (int >= 1, default 1) and repeat_input (0 or 1, default 0).
NeuronLayout ReadNeuronLayout(const KernelAttributes& attributes);

// One neuron-op call with validated shapes; no onnxruntime types, so a CUDA
// kernel or a benchmark can reuse it.
struct IFNeuronProblem {
  const float* x = nullptr;          // [T, M] (M = N*C*S elements per step)
  const float* x2 = nullptr;         // optional second current, laid out as x (input X2)
  float* y = nullptr;                // [T, M]
  int64_t timesteps = 1;             // T
  int64_t step_size = 0;             // M
  int64_t channels = 1;              // C
  int64_t inner = 1;                 // S = prod(X.shape[2:])
  const float* threshold = nullptr;  // 1 value, or C values if per_channel
  bool per_channel = false;
  int64_t channel_block = 1;         // b: 1 = plain [N, C, ...]; > 1 = NCHWc (cpu/if_neuron.h)
  int64_t x_step = 0;                // elements between steps of X: M, or 0 with repeat_input
  Isa isa = Isa::kBase;              // instruction set of the CPU step loops (the kernel's KernelIsa())
  ResetMode reset = ResetMode::kSubtract;
  // v_init, broadcast to the step shape: nullptr means 0 everywhere. For the
  // general case, step_dims/v_init_strides describe the step shape [N, C, ...]
  // and the v_init element stride along each of its axes (0 = broadcast).
  // With channel_block > 1, v_init has 1 or C values (v_init_per_channel).
  const float* v_init = nullptr;
  int64_t v_init_size = 0;
  bool v_init_per_channel = false;
  std::vector<int64_t> step_dims;
  std::vector<int64_t> v_init_strides;
};

// Elements per block of the CPU kernels: the membrane state and thresholds of one
// block (2 x 64 KiB) stay in L2 while the block walks all T steps, and each step
// reads and writes 64 KiB contiguous runs of X and Y: long enough for the hardware
// prefetchers, which stop at 4 KiB page boundaries (blocks of 1024 elements read
// one page per step and ran at 30-45% of copy bandwidth). Kernels keep their block
// buffers on the stack (at most 3 x 64 KiB). channel_block must divide it.
constexpr int64_t kIFNeuronBlock = 16384;
// Highest X rank for which a v_init needing a general broadcast is supported.
constexpr size_t kIFNeuronMaxRank = 16;

// Validates the inputs of one call (shapes of X, threshold, v_init, X2), allocates
// Y and returns the problem, its pointers into the context's tensors (device
// pointers for a GPU kernel); step_size == 0 means nothing to compute. isa is left
// at kBase. Throws std::invalid_argument with the reason.
IFNeuronProblem PrepareIFNeuron(Ort::KernelContext& ctx, int64_t timesteps, ResetMode reset,
                                const NeuronLayout& layout = {});

}  // namespace onnx2snn
