// CPU kernel of BIFCount; semantics in bif_count.h.
#include "cpu/bif_count.h"
#include "cpu/if_neuron.h"

#include <algorithm>
#include <exception>
#include <limits>
#include <stdexcept>
#include <vector>

namespace onnx2snn {
namespace {

constexpr int64_t kBlock = 4096;
constexpr int64_t kMinParallelWork = int64_t{1} << 16;

struct CountTask {
  const float* x;
  float* y;
  int64_t timesteps;
  int64_t step_size;  // elements per step
  float levels;
  float min_level;
};

void RunBlock(const CountTask& p, int64_t block) noexcept {
  alignas(64) float k[kBlock];
  const int64_t begin = block * kBlock;
  const int64_t n = std::min(kBlock, p.step_size - begin);
  std::fill(k, k + n, 0.0f);
  const float top = p.levels;
  const float bottom = p.min_level;
  for (int64_t t = 0; t < p.timesteps; ++t) {
    const float* __restrict x = p.x + t * p.step_size + begin;
    float* __restrict y = p.y + t * p.step_size + begin;
    for (int64_t i = 0; i < n; ++i) {
      const float up = (x[i] > k[i] && k[i] < top) ? 1.0f : 0.0f;
      const float down = (x[i] < k[i] && k[i] > bottom) ? 1.0f : 0.0f;
      k[i] = k[i] + up - down;
      y[i] = k[i];
    }
  }
}

void RunBlockTask(void* task, size_t block) {
  RunBlock(*static_cast<const CountTask*>(task), static_cast<int64_t>(block));
}

}  // namespace

void BIFCountKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  auto input = ctx.GetInput(0);
  const std::vector<int64_t> shape = input.GetTensorTypeAndShapeInfo().GetShape();
  if (shape.empty()) throw std::invalid_argument(Where() + ": X must have rank >= 1 ([T*N, ...])");
  if (shape[0] % timesteps_ != 0) {
    throw std::invalid_argument(Where() + ": X.shape[0] = " + std::to_string(shape[0]) +
                                " is not divisible by timesteps = " + std::to_string(timesteps_) +
                                " (X must be [T*N, ...], time-major)");
  }
  int64_t total = 1;
  for (int64_t d : shape) total *= d;
  auto output = ctx.GetOutput(0, shape);
  if (total == 0) return;
  CountTask task{input.GetTensorData<float>(), output.GetTensorMutableData<float>(), timesteps_,
                 total / timesteps_, static_cast<float>(levels_), static_cast<float>(min_level_)};
  const int64_t blocks = (task.step_size + kBlock - 1) / kBlock;
  if (blocks > 1 && total >= kMinParallelWork) {
    OrtStatus* status = Ort::GetApi().KernelContext_ParallelFor(context, RunBlockTask,
                                                                static_cast<size_t>(blocks), 0, &task);
    if (status == nullptr) return;
    Ort::GetApi().ReleaseStatus(status);
  }
  for (int64_t b = 0; b < blocks; ++b) RunBlock(task, b);
}

OrtStatusPtr BIFCountKernel::ComputeV2(OrtKernelContext* context) const {
  return ComputeToStatus(Where(), [&] { Compute(context); });
}

OrtStatusPtr BIFCountOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const {
  *op_kernel = nullptr;
  std::string name = "?";
  try {
    Ort::ConstKernelInfo kinfo(info);
    name = kinfo.GetNodeName();
    const int64_t timesteps = kinfo.GetAttribute<int64_t>("timesteps");
    const int64_t levels = kinfo.GetAttribute<int64_t>("levels");
    int64_t min_level = 0;
    if (OrtStatus* st = api.KernelInfoGetAttribute_int64(info, "min_level", &min_level)) {
      api.ReleaseStatus(st);  // absent: the default
      min_level = 0;
    }
    if (timesteps < 1) throw std::invalid_argument("attribute 'timesteps' must be >= 1");
    if (levels < 1 || levels > (int64_t{1} << 24)) {
      throw std::invalid_argument("attribute 'levels' must be in [1, 2^24]");  // exact in float
    }
    if (min_level > 0 || min_level < -(int64_t{1} << 24)) {
      throw std::invalid_argument("attribute 'min_level' must be in [-2^24, 0]");
    }
    *op_kernel = new BIFCountKernel(timesteps, levels, min_level, name);
    return nullptr;
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, ("BIFCount node '" + name + "': " + e.what()).c_str());
  }
}

}  // namespace onnx2snn
