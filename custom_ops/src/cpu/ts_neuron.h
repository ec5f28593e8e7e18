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
#pragma once

#include <cstdint>
#include <string>

#include "cpu/if_neuron.h"
#include "onnxruntime_cxx_api.h"

namespace onnx2snn {

// Runs block `block` of a problem prepared by PrepareIFNeuron; never throws.
void TSNeuronRunBlock(const IFNeuronProblem& p, int64_t block) noexcept;

struct TSNeuronKernel {
  TSNeuronKernel(int64_t timesteps, std::string node_name)
      : timesteps_(timesteps), node_name_(std::move(node_name)) {}

  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void Compute(OrtKernelContext* context) const;  // throws on error
  std::string Where() const;                      // "TSNeuron node 'name'"

  int64_t timesteps_;
  std::string node_name_;
};

struct TSNeuronOp : Ort::CustomOpBase<TSNeuronOp, TSNeuronKernel, true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const;

  const char* GetName() const { return "TSNeuron"; }

  size_t GetInputTypeCount() const { return 3; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }

  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

}  // namespace onnx2snn
