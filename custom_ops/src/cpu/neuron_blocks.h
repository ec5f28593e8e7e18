// The block walk the CPU neuron kernels (IFNeuron, BIFNeuron, TSNeuron) share:
// a call's elements of one step are cut into blocks of kIFNeuronBlock, each of
// which walks all T steps; these helpers split a block into runs that share one
// threshold pattern and fill per-element thresholds and initial potentials.
#pragma once

#include <cstdint>
#include <type_traits>

#include "common/neuron_inputs.h"

namespace onnx2snn {

// Blocks of one call (the last one may be shorter).
inline int64_t IFNeuronBlockCount(const IFNeuronProblem& p) {
  return (p.step_size + kIFNeuronBlock - 1) / kIFNeuronBlock;
}

// Channel runs at least this long are stepped with one scalar threshold.
constexpr int64_t kMinScalarRun = 64;

// Whether a block's elements can be walked as runs that share one threshold
// pattern (ForEachThresholdRun): a layer-wise threshold, channel runs of at least
// kMinScalarRun elements, or an NCHWc layout of block 8 or 16. Otherwise a kernel
// steps with FillThreshold's per-element array.
inline bool HasThresholdRuns(const IFNeuronProblem& p) {
  return !p.per_channel || (p.channel_block == 1 && p.inner >= kMinScalarRun) || p.channel_block == 8 ||
         p.channel_block == 16;
}

// Calls f(i, length, values + g*b) for consecutive runs covering elements
// [begin, begin + n) of one step (i relative to begin), each inside one channel
// group g of b = p.channel_block channels (b = 1: one channel); `values` holds one
// value per channel. With b > 1 (NCHWc) i and length are multiples of b, and
// element i + j of a run belongs to channel g*b + j % b (PrepareIFNeuron checks
// that b divides kIFNeuronBlock, and blocks start at multiples of it).
template <typename F>
void ForEachChannelRun(const IFNeuronProblem& p, const float* values, int64_t begin, int64_t n, F&& f) {
  const int64_t b = p.channel_block;
  const int64_t run = p.inner * b;  // one channel group of one sample
  const int64_t groups = p.channels / b;
  int64_t r = begin % run, g = (begin / run) % groups;
  for (int64_t i = 0; i < n; r = 0, g = (g + 1 == groups) ? 0 : g + 1) {
    const int64_t length = run - r < n - i ? run - r : n - i;
    f(i, length, values + g * b);
    i += length;
  }
}

// For HasThresholdRuns(p): calls f(i, length, th, lanes) for runs covering
// [begin, begin + n) of one step; element i + j of a run has threshold th[0]
// (lanes == 1) or th[j % lanes] (lanes == b, NCHWc).
template <typename F>
void ForEachThresholdRun(const IFNeuronProblem& p, int64_t begin, int64_t n, F&& f) {
  if (!p.per_channel) {
    f(int64_t{0}, n, p.threshold, int64_t{1});
    return;
  }
  ForEachChannelRun(p, p.threshold, begin, n,
                    [&](int64_t i, int64_t length, const float* th) { f(i, length, th, p.channel_block); });
}

// Fill helpers shared with the other neuron kernels (BIFNeuron): th[i] / v[i] =
// threshold / initial potential of element begin+i of one step, for i < n.
void FillThreshold(const IFNeuronProblem& p, int64_t begin, int64_t n, float* th);
void FillVInit(const IFNeuronProblem& p, int64_t begin, int64_t n, float* v);

// The walk every neuron kernel makes over elements [begin, begin + n) (one block):
// for t = 0..T-1 in order, calls
//   f(lanes, x, x2, y, i, length, th)
// for pieces [i, i + length) of step t (i relative to begin), with x, x2, y
// pointing at element i of step t (x2 is nullptr unless kAdd: X2 given) and the
// threshold of element i + j being th[0] (lanes == 1), th[j % lanes] (lanes 8 or
// 16: NCHWc) or th[j] (lanes == 0: per element, from FillThreshold into
// th_scratch, which holds n floats). `lanes` is a std::integral_constant, so f can
// instantiate its step loop for it.
template <bool kAdd, typename F>
void ForEachStepRun(const IFNeuronProblem& p, int64_t begin, int64_t n, float* th_scratch, F&& f) {
  using Lanes0 = std::integral_constant<int64_t, 0>;
  using Lanes1 = std::integral_constant<int64_t, 1>;
  using Lanes8 = std::integral_constant<int64_t, 8>;
  using Lanes16 = std::integral_constant<int64_t, 16>;
  const bool runs = HasThresholdRuns(p);
  if (!runs) FillThreshold(p, begin, n, th_scratch);
  for (int64_t t = 0; t < p.timesteps; ++t) {
    const float* x = p.x + t * p.x_step + begin;
    const float* x2 = kAdd ? p.x2 + t * p.step_size + begin : nullptr;
    float* y = p.y + t * p.step_size + begin;
    if (!runs) {
      f(Lanes0{}, x, x2, y, int64_t{0}, n, static_cast<const float*>(th_scratch));
      continue;
    }
    ForEachThresholdRun(p, begin, n, [&](int64_t i, int64_t length, const float* th, int64_t lanes) {
      const float* x2i = kAdd ? x2 + i : nullptr;
      if (lanes == 16) {
        f(Lanes16{}, x + i, x2i, y + i, i, length, th);
      } else if (lanes == 8) {
        f(Lanes8{}, x + i, x2i, y + i, i, length, th);
      } else {
        f(Lanes1{}, x + i, x2i, y + i, i, length, th);
      }
    });
  }
}

}  // namespace onnx2snn
