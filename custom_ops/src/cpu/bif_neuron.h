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
#pragma once

#include <cstdint>
#include <string>

#include "cpu/if_neuron.h"
#include "onnxruntime_cxx_api.h"

namespace onnx2snn {

// Runs block `block` of a problem prepared by PrepareIFNeuron; never throws.
void BIFNeuronRunBlock(const IFNeuronProblem& p, int32_t levels, int32_t min_level, int64_t block) noexcept;

struct BIFNeuronKernel {
  BIFNeuronKernel(int64_t timesteps, int64_t levels, int64_t min_level, NeuronLayout layout,
                  std::string node_name)
      : timesteps_(timesteps), levels_(levels), min_level_(min_level), layout_(layout),
        node_name_(std::move(node_name)) {}

  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void Compute(OrtKernelContext* context) const;  // throws on error
  std::string Where() const;                      // "BIFNeuron node 'name'"

  int64_t timesteps_;
  int64_t levels_;
  int64_t min_level_;
  NeuronLayout layout_;
  std::string node_name_;
};

struct BIFNeuronOp : Ort::CustomOpBase<BIFNeuronOp, BIFNeuronKernel, true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const;

  const char* GetName() const { return "BIFNeuron"; }

  size_t GetInputTypeCount() const { return 4; }  // X, threshold, v_init, X2 (as IFNeuron)
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index >= 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }

  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

}  // namespace onnx2snn
