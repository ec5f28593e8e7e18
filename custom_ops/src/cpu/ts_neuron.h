// TSNeuron (domain "onnx2snn", version 1): integrate-then-fire neurons with
// temporal separation (SpikeConverter, Liu et al. 2022), over T time steps
// folded into the batch axis, time-major (same layout and inputs as IFNeuron).
//
//   inputs   X         float [T*N, C, ...]   row t*N+n = step t of sample n
//            threshold float [] / [1] / [C]  theta_c
//            v_init    float, optional, numpy-broadcastable to [N, C, ...]
//   attrs    timesteps int T >= 1 (required)
//   output   Y         float, shape of X, Y in {0, theta_c}
//
// Per element, in float32 (v from v_init or 0):
//   for t = 0..T-1 in order:  v = v + x_t;          (accumulation phase)
//   q = v / theta;                                   (one division)
//   for t = 0..T-1:  y_t = q >= (float)(t + 1) ? theta : 0;   (firing phase)
// so the count is clip(floor(q), 0, T) and the spikes are the first ones.
// No state survives between two Run calls.
// Ground truth: onnx2snn/neurons/ts_neuron.py; the kernel matches it bit for bit.
// This file: the op's schema (TSNeuronOp) and CPU kernel.
#pragma once

#include <cstdint>

#include "common/kernel_base.h"
#include "common/neuron_inputs.h"

namespace onnx2snn {

// Runs block `block` of a problem prepared by PrepareIFNeuron; never throws.
void TSNeuronRunBlock(const IFNeuronProblem& p, int64_t block) noexcept;

class TSNeuronKernel : public KernelBase<TSNeuronKernel> {
 public:
  explicit TSNeuronKernel(const KernelAttributes& attributes);
  void Compute(OrtKernelContext* context) const;

 private:
  int64_t timesteps_;
};

struct TSNeuronOp : OpBase<TSNeuronOp, TSNeuronKernel> {
  const char* GetName() const { return "TSNeuron"; }
  size_t GetInputTypeCount() const { return 3; }  // X, threshold, v_init
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
};

}  // namespace onnx2snn
