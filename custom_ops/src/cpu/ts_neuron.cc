// CPU kernel of TSNeuron; semantics in ts_neuron.h.
#include "cpu/ts_neuron.h"

#include <algorithm>

#include "common/parallel.h"
#include "cpu/neuron_blocks.h"

namespace onnx2snn {
namespace {

// Accumulation: v = v + x over n contiguous elements (one step).
void Accumulate(const float* __restrict x, float* __restrict v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = v[i] + x[i];
}

// Firing at one step: y = q >= level ? theta : 0 (branch-free, vectorises).
void Fire(const float* __restrict q, const float* __restrict th, float level, float* __restrict y,
          int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = q[i] >= level ? th[i] : 0.0f;
}

}  // namespace

void TSNeuronRunBlock(const IFNeuronProblem& p, int64_t block) noexcept {
  alignas(64) float v[kIFNeuronBlock];
  alignas(64) float th[kIFNeuronBlock];
  const int64_t begin = block * kIFNeuronBlock;
  const int64_t n = std::min(kIFNeuronBlock, p.step_size - begin);
  FillThreshold(p, begin, n, th);
  FillVInit(p, begin, n, v);
  for (int64_t t = 0; t < p.timesteps; ++t) Accumulate(p.x + t * p.x_step + begin, v, n);
  for (int64_t i = 0; i < n; ++i) v[i] = v[i] / th[i];  // v now holds q = v / theta
  for (int64_t t = 0; t < p.timesteps; ++t) {
    Fire(v, th, static_cast<float>(t + 1), p.y + t * p.step_size + begin, n);
  }
}

TSNeuronKernel::TSNeuronKernel(const KernelAttributes& attributes)
    : KernelBase(attributes.Where()), timesteps_(attributes.RequiredInt("timesteps", 1)) {}

void TSNeuronKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  // Same inputs and shape rules as IFNeuron (the reset mode is not used).
  const IFNeuronProblem p = PrepareIFNeuron(ctx, timesteps_, ResetMode::kSubtract);
  if (p.step_size == 0) return;
  RunBlocks(context, IFNeuronBlockCount(p), p.step_size * p.timesteps,
            [&p](int64_t block) noexcept { TSNeuronRunBlock(p, block); });
}

}  // namespace onnx2snn
