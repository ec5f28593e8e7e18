// CPU kernel of TSNeuron; semantics in ts_neuron.h.
#include "cpu/ts_neuron.h"

#include <algorithm>
#include <exception>
#include <stdexcept>

namespace onnx2snn {
namespace {

constexpr int64_t kMinParallelWork = int64_t{1} << 16;

// Accumulation: v = v + x over n contiguous elements (one step).
void Accumulate(const float* __restrict x, float* __restrict v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = v[i] + x[i];
}

// Firing at one step: y = q >= level ? theta : 0 (branch-free, vectorises).
void Fire(const float* __restrict q, const float* __restrict th, float level, float* __restrict y,
          int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = q[i] >= level ? th[i] : 0.0f;
}

void RunBlockTask(void* problem, size_t block) {
  TSNeuronRunBlock(*static_cast<const IFNeuronProblem*>(problem), static_cast<int64_t>(block));
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

std::string TSNeuronKernel::Where() const { return "TSNeuron node '" + node_name_ + "'"; }

void TSNeuronKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  // Same inputs and shape rules as IFNeuron (the reset mode is not used).
  IFNeuronProblem p = PrepareIFNeuron(ctx, timesteps_, ResetMode::kSubtract, Where());
  if (p.step_size == 0) return;
  const int64_t blocks = IFNeuronBlockCount(p);
  if (blocks > 1 && p.step_size * p.timesteps >= kMinParallelWork) {
    OrtStatus* status = Ort::GetApi().KernelContext_ParallelFor(context, RunBlockTask,
                                                                static_cast<size_t>(blocks), 0, &p);
    if (status == nullptr) return;
    Ort::GetApi().ReleaseStatus(status);
  }
  for (int64_t b = 0; b < blocks; ++b) TSNeuronRunBlock(p, b);
}

OrtStatusPtr TSNeuronKernel::ComputeV2(OrtKernelContext* context) const {
  return ComputeToStatus(Where(), [&] { Compute(context); });
}

OrtStatusPtr TSNeuronOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info,
                                        void** op_kernel) const {
  *op_kernel = nullptr;
  const std::string node_name = KernelNodeName(api, info);
  const std::string where = "TSNeuron node '" + node_name + "'";
  int64_t timesteps = 0;
  if (OrtStatus* st = api.KernelInfoGetAttribute_int64(info, "timesteps", &timesteps)) {
    const std::string msg = where + ": required int attribute 'timesteps' is missing or not an int (" +
                            api.GetErrorMessage(st) + ")";
    api.ReleaseStatus(st);
    return api.CreateStatus(ORT_INVALID_ARGUMENT, msg.c_str());
  }
  if (timesteps < 1) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT,
                            (where + ": attribute 'timesteps' must be >= 1, got " + std::to_string(timesteps)).c_str());
  }
  try {
    *op_kernel = new TSNeuronKernel(timesteps, node_name);
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_FAIL, (where + ": " + e.what()).c_str());
  }
  return nullptr;
}

}  // namespace onnx2snn
