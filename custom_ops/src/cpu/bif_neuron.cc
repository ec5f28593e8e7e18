// CPU kernel of BIFNeuron; semantics in bif_neuron.h.
#include "cpu/bif_neuron.h"

#include <algorithm>
#include <limits>

#include "common/parallel.h"
#include "cpu/neuron_blocks.h"

namespace onnx2snn {
namespace {

// One step over n contiguous elements, in the float32 sequence of the reference.
// The threshold of element i is th[i] (kLanes == 0), th[0] (kLanes == 1: a
// layer-wise threshold or one channel's run) or th[i % kLanes] (an NCHWc channel
// block; n a multiple of kLanes), as in IFNeuron's StepBody. y = up ? th : (down ? -th
// : 0) and v - y equals up ? v - th : (down ? v + th : v) exactly (v - (-th) is
// v + th, v - 0 is v), so one subtraction replaces two selects. Branch-free, so
// the loop vectorises (see -fno-trapping-math in CMakeLists.txt); run through
// CallIsa (common/isa.h) for the instruction set chosen at run time.
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

BIFNeuronKernel::BIFNeuronKernel(const KernelAttributes& attributes)
    : KernelBase(attributes.Where()),
      timesteps_(attributes.RequiredInt("timesteps", 1)),
      levels_(static_cast<int32_t>(attributes.RequiredInt("levels", 1, std::numeric_limits<int32_t>::max()))),
      min_level_(static_cast<int32_t>(
          attributes.OptionalInt("min_level", 0, std::numeric_limits<int32_t>::min(), 0))),
      layout_(ReadNeuronLayout(attributes)),
      isa_(KernelIsa()) {}

void BIFNeuronKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  // Same inputs and shape rules as IFNeuron (the reset mode is not used).
  IFNeuronProblem p = PrepareIFNeuron(ctx, timesteps_, ResetMode::kSubtract, layout_);
  if (p.step_size == 0) return;
  p.isa = isa_;
  RunBlocks(context, IFNeuronBlockCount(p), p.step_size * p.timesteps,
            [&](int64_t block) noexcept { BIFNeuronRunBlock(p, levels_, min_level_, block); });
}

}  // namespace onnx2snn
