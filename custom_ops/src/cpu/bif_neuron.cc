// CPU kernel of BIFNeuron; semantics in bif_neuron.h.
#include "cpu/bif_neuron.h"

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
// The threshold of element i is th[i] (kLanes == 0), th[0] (kLanes == 1: a
// layer-wise threshold or one channel's run) or th[i % kLanes] (an NCHWc channel
// block; n a multiple of kLanes), as in IFNeuron's StepBody. y = up ? th : (down ? -th
// : 0) and v - y equals up ? v - th : (down ? v + th : v) exactly (v - (-th) is
// v + th, v - 0 is v), so one subtraction replaces two selects. Branch-free, so
// the loop vectorises (see -fno-trapping-math in CMakeLists.txt); run through
// CallIsa (if_neuron.h) for the instruction set chosen at run time.
template <int64_t kLanes, bool kAdd>
struct StepBody {
  ONNX2SNN_ALWAYS_INLINE void operator()(const float* __restrict x, const float* __restrict x2,
                                         float* __restrict y, float* __restrict v, int32_t* __restrict k,
                                         const float* __restrict th, int32_t levels, int32_t min_level,
                                         int64_t n) const {
    if (n <= 0) return;
    const int64_t width = kLanes > 1 ? kLanes : n;
    for (int64_t i0 = 0; i0 < n; i0 += width) {
      for (int64_t l = 0; l < width; ++l) {
        const int64_t i = i0 + l;
        const float t = kLanes == 0 ? th[i] : (kLanes == 1 ? th[0] : th[l]);
        const float vi = v[i] + (kAdd ? x[i] + x2[i] : x[i]);  // X2: the Add it replaces
        const int32_t ki = k[i];
        const bool up = vi >= t && ki < levels;
        const bool down = !up && vi < 0.0f && ki > min_level;
        const float yi = up ? t : (down ? -t : 0.0f);
        y[i] = yi;
        v[i] = vi - yi;
        k[i] = ki + static_cast<int32_t>(up) - static_cast<int32_t>(down);
      }
    }
  }
};

void RunBlockTask(void* task, size_t block) {
  const auto* t = static_cast<const BIFTask*>(task);
  BIFNeuronRunBlock(*t->problem, t->levels, t->min_level, static_cast<int64_t>(block));
}

template <Isa kIsa, bool kAdd>
void RunSteps(const IFNeuronProblem& p, int32_t levels, int32_t min_level, int64_t begin, int64_t n, float* v,
              int32_t* k, float* th) {
  ForEachStepRun<kAdd>(p, begin, n, th, [&](auto lanes, const float* x, const float* x2, float* y, int64_t i,
                                            int64_t length, const float* theta) {
    CallIsa<kIsa, StepBody<decltype(lanes)::value, kAdd>>(x, x2, y, v + i, k + i, theta, levels, min_level,
                                                       length);
  });
}

}  // namespace

void BIFNeuronRunBlock(const IFNeuronProblem& p, int32_t levels, int32_t min_level, int64_t block) noexcept {
  alignas(64) float v[kIFNeuronBlock];
  alignas(64) int32_t k[kIFNeuronBlock];
  alignas(64) float th[kIFNeuronBlock];
  const int64_t begin = block * kIFNeuronBlock;
  const int64_t n = std::min(kIFNeuronBlock, p.step_size - begin);
  FillVInit(p, begin, n, v);
  std::fill(k, k + n, 0);
  WithIsa(p.isa, [&](auto isa) {
    constexpr Isa kIsa = decltype(isa)::value;
    if (p.x2 != nullptr) {
      RunSteps<kIsa, true>(p, levels, min_level, begin, n, v, k, th);
    } else {
      RunSteps<kIsa, false>(p, levels, min_level, begin, n, v, k, th);
    }
  });
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
