// CPU kernel of BIFNeuron; semantics in bif_neuron.h.
#include "bif_neuron.h"

#include <algorithm>
#include <exception>
#include <limits>
#include <stdexcept>

namespace onnx2snn {
namespace {

constexpr int64_t kMinParallelWork = int64_t{1} << 16;

struct BIFTask {
  const IFNeuronProblem* problem;
  int32_t levels;
  int32_t min_level;
};

// One step over n contiguous elements, in the float32 sequence of the reference.
// Branch-free selects so the loop vectorises (see -fno-trapping-math in CMakeLists.txt).
void Step(const float* __restrict x, float* __restrict y, float* __restrict v, int32_t* __restrict k,
          const float* __restrict th, int32_t levels, int32_t min_level, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float vi = v[i] + x[i];
    const bool up = vi >= th[i] && k[i] < levels;
    const bool down = !up && vi < 0.0f && k[i] > min_level;
    y[i] = up ? th[i] : (down ? -th[i] : 0.0f);
    v[i] = up ? vi - th[i] : (down ? vi + th[i] : vi);
    k[i] += static_cast<int32_t>(up) - static_cast<int32_t>(down);
  }
}

void RunBlockTask(void* task, size_t block) {
  const auto* t = static_cast<const BIFTask*>(task);
  BIFNeuronRunBlock(*t->problem, t->levels, t->min_level, static_cast<int64_t>(block));
}

}  // namespace

void BIFNeuronRunBlock(const IFNeuronProblem& p, int32_t levels, int32_t min_level, int64_t block) noexcept {
  alignas(64) float v[kIFNeuronBlock];
  alignas(64) float th[kIFNeuronBlock];
  alignas(64) int32_t k[kIFNeuronBlock];
  const int64_t begin = block * kIFNeuronBlock;
  const int64_t n = std::min(kIFNeuronBlock, p.step_size - begin);
  FillThreshold(p, begin, n, th);
  FillVInit(p, begin, n, v);
  std::fill(k, k + n, 0);
  for (int64_t t = 0; t < p.timesteps; ++t) {
    Step(p.x + t * p.x_step + begin, p.y + t * p.step_size + begin, v, k, th, levels, min_level, n);
  }
}

std::string BIFNeuronKernel::Where() const { return "BIFNeuron node '" + node_name_ + "'"; }

void BIFNeuronKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  // Same inputs and shape rules as IFNeuron (the reset mode is not used).
  IFNeuronProblem p = PrepareIFNeuron(ctx, timesteps_, ResetMode::kSubtract, Where(), layout_);
  if (p.step_size == 0) return;
  BIFTask task{&p, static_cast<int32_t>(levels_), static_cast<int32_t>(min_level_)};
  const int64_t blocks = IFNeuronBlockCount(p);
  if (blocks > 1 && p.step_size * p.timesteps >= kMinParallelWork) {
    OrtStatus* status = Ort::GetApi().KernelContext_ParallelFor(context, RunBlockTask,
                                                                static_cast<size_t>(blocks), 0, &task);
    if (status == nullptr) return;
    Ort::GetApi().ReleaseStatus(status);
  }
  for (int64_t b = 0; b < blocks; ++b) BIFNeuronRunBlock(p, task.levels, task.min_level, b);
}

OrtStatusPtr BIFNeuronKernel::ComputeV2(OrtKernelContext* context) const {
  return ComputeToStatus(Where(), [&] { Compute(context); });
}

OrtStatusPtr BIFNeuronOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info,
                                         void** op_kernel) const {
  *op_kernel = nullptr;
  const std::string node_name = KernelNodeName(api, info);
  const std::string where = "BIFNeuron node '" + node_name + "'";
  auto error = [&](const std::string& what, OrtStatus* cause) {
    std::string msg = where + ": " + what;
    if (cause != nullptr) {
      msg += std::string(" (") + api.GetErrorMessage(cause) + ")";
      api.ReleaseStatus(cause);
    }
    return api.CreateStatus(ORT_INVALID_ARGUMENT, msg.c_str());
  };
  int64_t timesteps = 0;
  if (OrtStatus* st = api.KernelInfoGetAttribute_int64(info, "timesteps", &timesteps)) {
    return error("required int attribute 'timesteps' is missing or not an int", st);
  }
  if (timesteps < 1) return error("attribute 'timesteps' must be >= 1, got " + std::to_string(timesteps), nullptr);
  int64_t levels = 0;
  if (OrtStatus* st = api.KernelInfoGetAttribute_int64(info, "levels", &levels)) {
    return error("required int attribute 'levels' is missing or not an int", st);
  }
  if (levels < 1 || levels > std::numeric_limits<int32_t>::max()) {
    return error("attribute 'levels' must be in [1, 2^31 - 1], got " + std::to_string(levels), nullptr);
  }
  int64_t min_level = 0;
  if (OrtStatus* st = api.KernelInfoGetAttribute_int64(info, "min_level", &min_level)) {
    api.ReleaseStatus(st);  // absent: the default
    min_level = 0;
  }
  if (min_level > 0 || min_level < std::numeric_limits<int32_t>::min()) {
    return error("attribute 'min_level' must be in [-2^31, 0], got " + std::to_string(min_level), nullptr);
  }
  NeuronLayout layout;
  if (OrtStatusPtr status = ReadNeuronLayout(api, info, where, &layout)) return status;
  try {
    *op_kernel = new BIFNeuronKernel(timesteps, levels, min_level, layout, node_name);
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_FAIL, (where + ": " + e.what()).c_str());
  }
  return nullptr;
}

}  // namespace onnx2snn
