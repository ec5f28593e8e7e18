// CPU kernel of IFNeuron; semantics in if_neuron.h.
#include "cpu/if_neuron.h"

#include <algorithm>
#include <cstdint>

#include "common/parallel.h"
#include "cpu/neuron_blocks.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define ONNX2SNN_STREAM_STORES 1
#endif

namespace onnx2snn {
namespace {

// One time step over n contiguous elements, in exactly the float32 sequence of
// the reference: v = v + x; s = v >= theta; y = s ? theta : 0; v = s ? v - theta : v
// (reset to zero: v = s ? 0 : v). The threshold of element i is th[i] (kLanes == 0),
// th[0] (kLanes == 1: a layer-wise threshold or one channel's run, no threshold
// array to stream) or th[i % kLanes] (an NCHWc channel block, n a multiple of
// kLanes). The selects have no branch, so the loops vectorise; for the subtraction
// that needs -fno-trapping-math (CMakeLists.txt), which lets GCC compute v - theta
// in every lane and keep it only where s. It changes no result, only FP-exception flags.
// Run through CallIsa (common/isa.h) for the instruction set chosen at run time.
template <int64_t kLanes, bool kSubtract, bool kAdd>
struct StepBody {
  ONNX2SNN_ALWAYS_INLINE void operator()(const float* __restrict x, const float* __restrict x2,
                                         float* __restrict y, float* __restrict v, const float* __restrict th,
                                         int64_t n) const {
    if (n <= 0) return;
    const int64_t width = kLanes > 1 ? kLanes : n;  // one pass over n, or n / kLanes channel blocks
    for (int64_t i0 = 0; i0 < n; i0 += width) {
      for (int64_t l = 0; l < width; ++l) {
        const int64_t i = i0 + l;
        const float t = kLanes == 0 ? th[i] : (kLanes == 1 ? th[0] : th[l]);
        const float vi = v[i] + (kAdd ? x[i] + x2[i] : x[i]);
        const bool s = vi >= t;
        y[i] = s ? t : 0.0f;
        v[i] = s ? (kSubtract ? vi - t : 0.0f) : vi;
      }
    }
  }
};

// Outputs of at least this many bytes are written with non-temporal (streaming)
// stores: Y goes to memory without each of its lines being read first
// (write-allocate), the way memcpy writes large copies, and does not evict the
// membrane state and the next rows of X from the caches. Smaller outputs are
// better left in the caches for the op that reads them next. A constant: the
// last-level cache size the OS reports is unreliable in VMs (glibc says 320 MiB
// for this 32 MiB-L3 VM).
constexpr int64_t kStreamBytes = int64_t{64} << 20;

#ifdef ONNX2SNN_STREAM_STORES
// StepBody<1, kSubtract, kAdd> with streaming stores of y; the same float32 results:
// y = s ? th : 0, and v - y equals s ? v - th : v exactly (v - 0 = v).
template <bool kSubtract, bool kAdd>
void StepStream(const float* __restrict x, const float* __restrict x2, float* __restrict y, float* __restrict v,
                float th, int64_t n) {
  auto at = [](const float* a, int64_t i) { return kAdd ? a + i : nullptr; };
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<std::uintptr_t>(y + i) & 15) != 0; ++i) {  // align y
    StepBody<1, kSubtract, kAdd>{}(x + i, at(x2, i), y + i, v + i, &th, 1);
  }
  const __m128 th4 = _mm_set1_ps(th);
  for (; i + 4 <= n; i += 4) {
    __m128 xi = _mm_loadu_ps(x + i);
    if (kAdd) xi = _mm_add_ps(xi, _mm_loadu_ps(x2 + i));
    const __m128 vi = _mm_add_ps(_mm_loadu_ps(v + i), xi);
    const __m128 s = _mm_cmpge_ps(vi, th4);
    const __m128 out = _mm_and_ps(s, th4);
    _mm_stream_ps(y + i, out);
    _mm_storeu_ps(v + i, kSubtract ? _mm_sub_ps(vi, out) : _mm_andnot_ps(s, vi));
  }
  for (; i < n; ++i) StepBody<1, kSubtract, kAdd>{}(x + i, at(x2, i), y + i, v + i, &th, 1);  // tail
}
#endif

// All T steps of elements [begin, begin + n) (v: their potentials; th: scratch);
// kAdd: the current is x + x2.
template <Isa kIsa, bool kSubtract, bool kAdd>
void RunSteps(const IFNeuronProblem& p, int64_t begin, int64_t n, float* v, float* th) {
#ifdef ONNX2SNN_STREAM_STORES
  const bool stream = p.timesteps * p.step_size * static_cast<int64_t>(sizeof(float)) >= kStreamBytes;
#endif
  ForEachStepRun<kAdd>(p, begin, n, th, [&](auto lanes, const float* x, const float* x2, float* y, int64_t i,
                                            int64_t length, const float* theta) {
    constexpr int64_t kLanes = decltype(lanes)::value;
#ifdef ONNX2SNN_STREAM_STORES
    if (kLanes == 1 && stream) {
      StepStream<kSubtract, kAdd>(x, x2, y, v + i, theta[0], length);
      return;
    }
#endif
    CallIsa<kIsa, StepBody<kLanes, kSubtract, kAdd>>(x, x2, y, v + i, theta, length);
  });
#ifdef ONNX2SNN_STREAM_STORES
  if (stream) _mm_sfence();  // the streamed stores are visible before the block is reported done
#endif
}

}  // namespace

void IFNeuronRunBlock(const IFNeuronProblem& p, int64_t block) noexcept {
  alignas(64) float v[kIFNeuronBlock];
  alignas(64) float th[kIFNeuronBlock];
  const int64_t begin = block * kIFNeuronBlock;
  const int64_t n = std::min(kIFNeuronBlock, p.step_size - begin);
  FillVInit(p, begin, n, v);
  const bool add = p.x2 != nullptr;
  WithIsa(p.isa, [&](auto isa) {
    constexpr Isa kIsa = decltype(isa)::value;
    if (p.reset == ResetMode::kSubtract) {
      add ? RunSteps<kIsa, true, true>(p, begin, n, v, th) : RunSteps<kIsa, true, false>(p, begin, n, v, th);
    } else {
      add ? RunSteps<kIsa, false, true>(p, begin, n, v, th) : RunSteps<kIsa, false, false>(p, begin, n, v, th);
    }
  });
}

IFNeuronKernel::IFNeuronKernel(const KernelAttributes& attributes)
    : KernelBase(attributes.Where()),
      timesteps_(attributes.RequiredInt("timesteps", 1)),
      reset_(ReadReset(attributes)),
      layout_(ReadNeuronLayout(attributes)),
      isa_(KernelIsa()) {}

void IFNeuronKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  IFNeuronProblem p = PrepareIFNeuron(ctx, timesteps_, reset_, layout_);
  if (p.step_size == 0) return;
  p.isa = isa_;
  RunBlocks(context, IFNeuronBlockCount(p), p.step_size * p.timesteps,
            [&p](int64_t block) noexcept { IFNeuronRunBlock(p, block); });
}

}  // namespace onnx2snn
