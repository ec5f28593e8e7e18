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
#pragma once

#include <cstdint>
#include <string>

#include "onnxruntime_cxx_api.h"

namespace onnx2snn {

struct BIFCountKernel {
  BIFCountKernel(int64_t timesteps, int64_t levels, int64_t min_level, std::string node_name)
      : timesteps_(timesteps), levels_(levels), min_level_(min_level), node_name_(std::move(node_name)) {}

  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void Compute(OrtKernelContext* context) const;  // throws on error
  std::string Where() const { return "BIFCount node '" + node_name_ + "'"; }

  int64_t timesteps_;
  int64_t levels_;
  int64_t min_level_;
  std::string node_name_;
};

struct BIFCountOp : Ort::CustomOpBase<BIFCountOp, BIFCountKernel, true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const;

  const char* GetName() const { return "BIFCount"; }

  size_t GetInputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

}  // namespace onnx2snn
