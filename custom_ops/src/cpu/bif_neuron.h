// BIFNeuron (domain "onnx2snn", version 1): bipolar integrate-and-fire neurons
// with a spike count bounded to [0, L], over T time steps folded into the batch
// axis, time-major (same layout and inputs as IFNeuron).
//
//   inputs   X         float [T*N, C, ...]   row t*N+n = step t of sample n
//            threshold float [] / [1] / [C]  theta_c
//            v_init    float, optional, numpy-broadcastable to [N, C, ...]
//   attrs    timesteps int T >= 1 (required); levels int L >= 1 (required);
//            min_level int m <= 0 (default 0: the count runs over [m, L]);
//            channel_block, repeat_input: session-internal layout, as IFNeuron
//   input X2 (optional, session-internal): the current is X + X2, as IFNeuron
//   output   Y         float, shape of X, Y in {-theta_c, 0, theta_c}
//
// Per element, for t = 0..T-1 in order (v float32 from v_init or 0, k int from 0):
//   v = v + x_t;
//   if (v >= theta && k < L)   { y_t = theta;  v = v - theta; k = k + 1; }
//   else if (v < 0 && k > m)   { y_t = -theta; v = v + theta; k = k - 1; }
//   else                         y_t = 0;
// No state survives between two Run calls.
// Ground truth: onnx2snn/neurons/bif_neuron.py; the kernel matches it bit for bit.
// This file: the op's schema (BIFNeuronOp) and CPU kernel.
#pragma once

#include <cstdint>

#include "common/isa.h"
#include "common/kernel_base.h"
#include "common/neuron_inputs.h"

namespace onnx2snn {

// Runs block `block` of a problem prepared by PrepareIFNeuron; never throws.
void BIFNeuronRunBlock(const IFNeuronProblem& p, int32_t levels, int32_t min_level, int64_t block) noexcept;

class BIFNeuronKernel : public KernelBase<BIFNeuronKernel> {
 public:
  explicit BIFNeuronKernel(const KernelAttributes& attributes);
  void Compute(OrtKernelContext* context) const;

 private:
  int64_t timesteps_;
  int32_t levels_;
  int32_t min_level_;
  NeuronLayout layout_;
  Isa isa_;
};

struct BIFNeuronOp : OpBase<BIFNeuronOp, BIFNeuronKernel> {
  BIFNeuronOp() : OpBase(InferNeuronShape) {}
  const char* GetName() const { return "BIFNeuron"; }
  size_t GetInputTypeCount() const { return 4; }  // X, threshold, v_init, X2 (as IFNeuron)
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index >= 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
};

}  // namespace onnx2snn
