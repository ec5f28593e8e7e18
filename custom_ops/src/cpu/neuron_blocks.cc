// FillThreshold and FillVInit (neuron_blocks.h).
#include "cpu/neuron_blocks.h"

#include <algorithm>
#include <cstring>

namespace onnx2snn {
namespace {

// dst[i] = values[channel of element begin+i] in the NCHWc layout.
void FillBlocked(const IFNeuronProblem& p, const float* values, int64_t begin, int64_t n, float* dst) {
  const int64_t b = p.channel_block;
  ForEachChannelRun(p, values, begin, n, [&](int64_t i, int64_t length, const float* group) {
    for (int64_t j = 0; j < length; j += b) {
      std::memcpy(dst + i + j, group, static_cast<size_t>(b) * sizeof(float));
    }
  });
}

}  // namespace

// th[i] = theta of the channel of element begin+i (channel = (e / S) % C, or
// the NCHWc channel for channel_block > 1).
void FillThreshold(const IFNeuronProblem& p, int64_t begin, int64_t n, float* th) {
  if (!p.per_channel) {
    std::fill(th, th + n, p.threshold[0]);
    return;
  }
  if (p.channel_block > 1) {
    FillBlocked(p, p.threshold, begin, n, th);
    return;
  }
  int64_t r = begin % p.inner;
  int64_t c = (begin / p.inner) % p.channels;
  for (int64_t i = 0; i < n; ++i) {
    th[i] = p.threshold[c];
    if (++r == p.inner) {
      r = 0;
      if (++c == p.channels) c = 0;
    }
  }
}

// v[i] = v_init broadcast to the step shape, at element begin+i.
void FillVInit(const IFNeuronProblem& p, int64_t begin, int64_t n, float* v) {
  if (p.v_init == nullptr) {
    std::fill(v, v + n, 0.0f);
  } else if (p.v_init_size == 1) {
    std::fill(v, v + n, p.v_init[0]);
  } else if (p.v_init_per_channel) {
    FillBlocked(p, p.v_init, begin, n, v);
  } else if (p.v_init_size == p.step_size) {  // same element count: no broadcast
    std::memcpy(v, p.v_init + begin, static_cast<size_t>(n) * sizeof(float));
  } else {  // general broadcast: walk the multi-index of the step shape
    const size_t rank = p.step_dims.size();  // <= kIFNeuronMaxRank, checked in Compute
    int64_t index[kIFNeuronMaxRank];
    int64_t rest = begin;
    int64_t offset = 0;
    for (size_t d = rank; d-- > 0;) {
      index[d] = rest % p.step_dims[d];
      rest /= p.step_dims[d];
      offset += index[d] * p.v_init_strides[d];
    }
    for (int64_t i = 0; i < n; ++i) {
      v[i] = p.v_init[offset];
      for (size_t d = rank; d-- > 0;) {  // odometer increment
        offset += p.v_init_strides[d];
        if (++index[d] < p.step_dims[d]) break;
        offset -= index[d] * p.v_init_strides[d];
        index[d] = 0;
      }
    }
  }
}

}  // namespace onnx2snn
