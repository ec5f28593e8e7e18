// CPU kernel of BIFCount; semantics in bif_count.h.
#include "cpu/bif_count.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/parallel.h"

namespace onnx2snn {
namespace {

constexpr int64_t kBlock = 4096;
constexpr int64_t kMaxLevel = int64_t{1} << 24;  // integers up to 2^24 are exact in float32

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

}  // namespace

BIFCountKernel::BIFCountKernel(const KernelAttributes& attributes)
    : KernelBase(attributes.Where()),
      timesteps_(attributes.RequiredInt("timesteps", 1)),
      levels_(attributes.RequiredInt("levels", 1, kMaxLevel)),
      min_level_(attributes.OptionalInt("min_level", 0, -kMaxLevel, 0)) {}

void BIFCountKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  auto input = ctx.GetInput(0);
  const std::vector<int64_t> shape = input.GetTensorTypeAndShapeInfo().GetShape();
  if (shape.empty()) throw std::invalid_argument("X must have rank >= 1 ([T*N, ...])");
  if (shape[0] % timesteps_ != 0) {
    throw std::invalid_argument("X.shape[0] = " + std::to_string(shape[0]) + " is not divisible by timesteps = " +
                                std::to_string(timesteps_) + " (X must be [T*N, ...], time-major)");
  }
  int64_t total = 1;
  for (int64_t d : shape) total *= d;
  auto output = ctx.GetOutput(0, shape);
  if (total == 0) return;
  const CountTask task{input.GetTensorData<float>(), output.GetTensorMutableData<float>(), timesteps_,
                       total / timesteps_, static_cast<float>(levels_), static_cast<float>(min_level_)};
  RunBlocks(context, (task.step_size + kBlock - 1) / kBlock, total,
            [&task](int64_t block) noexcept { RunBlock(task, block); });
}

}  // namespace onnx2snn
