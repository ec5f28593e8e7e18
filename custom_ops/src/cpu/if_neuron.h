// IFNeuron (domain "onnx2snn", version 1): integrate-and-fire neurons over T
// time steps folded into the batch axis, time-major.
//
//   inputs   X         float [T*N, C, ...]   row t*N+n = step t of sample n
//            threshold float [] / [1] / [C]  theta_c
//            v_init    float, optional, numpy-broadcastable to [N, C, ...]
//            X2        float, optional, shape of X (session-internal, see below)
//   attrs    timesteps int T >= 1 (required); reset "subtract" (default) | "zero";
//            channel_block int b >= 1 (default 1), repeat_input int 0|1 (default 0): see below
//   output   Y         float, shape of X, Y in {0, theta_c}
//
// Per element, for t = 0..T-1 in order, in float32:
//   v = v + x_t;  s = (v >= theta);  y_t = s ? theta : 0;
//   if (s) v = (reset == subtract) ? v - theta : 0;
// v starts at v_init (or 0). No state survives between two Run calls.
//
// channel_block b > 1 (used only inside sessions, by onnx2snn/blocked_layout.py;
// never in a written model): X and Y are in onnxruntime's NCHWc layout, rank 4,
// C = X.shape[1] a multiple of b, element (n, c, h, w) stored at
// ((n*C/b + c/b)*H*W + h*W + w)*b + c%b. The neuron of every element is the same;
// only the channel an element's theta_c belongs to changes. v_init must then have
// 1 or C elements (one per channel).
// repeat_input = 1 (also only inside sessions): X is one step [N, C, ...], the same
// input current at every step, and Y is [T*N, C, ...]: the op reads X T times
// instead of a Tile writing it T times.
// X2 (also only inside sessions): the input current is X + X2, added element by
// element in float32 exactly as the Add node it replaces (a residual Add whose
// only reader was this neuron), without writing the sum to memory.
// Ground truth: onnx2snn/neurons/if_neuron.py; the kernel matches it bit for bit.
// This file: the op's schema (IFNeuronOp) and CPU kernel; cuda/ holds the CUDA ones.
#pragma once

#include <cstdint>

#include "common/isa.h"
#include "common/kernel_base.h"
#include "common/neuron_inputs.h"

namespace onnx2snn {

// Runs block `block` (elements [block*kIFNeuronBlock, ...) of every step).
// Blocks are independent; never throws.
void IFNeuronRunBlock(const IFNeuronProblem& p, int64_t block) noexcept;

// Attributes timesteps (int >= 1, required), reset and the layout ones
// (common/neuron_inputs.h); the instruction set is chosen when the kernel is created.
class IFNeuronKernel : public KernelBase<IFNeuronKernel> {
 public:
  explicit IFNeuronKernel(const KernelAttributes& attributes);
  void Compute(OrtKernelContext* context) const;

 private:
  int64_t timesteps_;
  ResetMode reset_;
  NeuronLayout layout_;
  Isa isa_;
};

struct IFNeuronOp : OpBase<IFNeuronOp, IFNeuronKernel> {
  IFNeuronOp() : OpBase(InferNeuronShape) {}
  const char* GetName() const { return "IFNeuron"; }
  size_t GetInputTypeCount() const { return 4; }  // X, threshold, v_init, X2
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index >= 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
};

}  // namespace onnx2snn
