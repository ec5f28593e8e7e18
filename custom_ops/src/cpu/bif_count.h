// BIFCount (domain "onnx2snn", version 1): the bipolar integrate-and-fire neuron
// of BIFNeuron in count form, for the exact ("cumulative") evaluation of a BIF SNN.
//
//   inputs   X   float [T*N, ...]   row t*N+n = step t of sample n: the target level
//                                    tau_t = floor(alpha*V_t + beta) of the neuron's
//                                    cumulative input V_t (computed by the graph)
//   attrs    timesteps int T >= 1 (required); levels int L >= 1 (required);
//            min_level int m <= 0 (default 0)
//   output   Y   float, shape of X: the neuron's spike count k_t after step t
//
// Per element, for t = 0..T-1 in order (k float, from 0; integers are exact):
//   up   = x_t > k && k < L          (clip(x_t, m, L) > k)
//   down = x_t < k && k > m          (clip(x_t, m, L) < k)
//   k    = k + up - down;   y_t = k
// A NaN target leaves k unchanged. No state survives between two Run calls.
// Ground truth: onnx2snn/neurons/bif_count.py; the kernel matches it bit for bit.
// This file: the op's schema (BIFCountOp) and CPU kernel.
#pragma once

#include <cstdint>

#include "common/kernel_base.h"

namespace onnx2snn {

// Attributes timesteps (>= 1), levels in [1, 2^24] and min_level in [-2^24, 0]
// (integers exact in float32, the type of the count).
class BIFCountKernel : public KernelBase<BIFCountKernel> {
 public:
  explicit BIFCountKernel(const KernelAttributes& attributes);
  void Compute(OrtKernelContext* context) const;

 private:
  int64_t timesteps_;
  int64_t levels_;
  int64_t min_level_;
};

struct BIFCountOp : OpBase<BIFCountOp, BIFCountKernel> {
  const char* GetName() const { return "BIFCount"; }
  size_t GetInputTypeCount() const { return 1; }
};

}  // namespace onnx2snn
