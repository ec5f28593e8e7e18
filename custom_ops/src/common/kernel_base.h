// What every op of the library shares: OpBase<TOp, TKernel> (the schema's float
// tensors, CreateKernelV2, output shape inference) and KernelBase<TKernel>
// (ComputeV2), so that all of them read attributes, report errors and infer
// shapes one way.
#pragma once

#include <string>
#include <utility>

#include "common/attributes.h"
#include "common/shape_inference.h"
#include "common/status.h"
#include "onnxruntime_cxx_api.h"

namespace onnx2snn {

// TKernel::Compute(OrtKernelContext*) const runs one call and throws on error;
// ComputeV2 returns that error as an OrtStatus naming the node.
template <typename TKernel>
class KernelBase {
 public:
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const {
    return ToStatus(where_, [&] { static_cast<const TKernel*>(this)->Compute(context); });
  }

  const std::string& Where() const { return where_; }  // "IFNeuron node 'n0'"

 protected:
  explicit KernelBase(std::string where) : where_(std::move(where)) {}

 private:
  std::string where_;
};

// TOp gives GetName() and GetInputTypeCount() (and, where they differ from
// Ort::CustomOpBase's defaults, GetInputCharacteristic / GetExecutionProviderType);
// every input and the one output are float tensors. TKernel(const KernelAttributes&)
// reads and checks the node's attributes, throwing on error. WithStatus = true:
// errors are OrtStatus values, never C++ exceptions across the C API.
template <typename TOp, typename TKernel>
struct OpBase : Ort::CustomOpBase<TOp, TKernel, /*WithStatus=*/true> {
  explicit OpBase(InferShapeFn infer_shape = InferSameShape) {
    this->InferOutputShapeFn = infer_shape;  // after CustomOpBase's constructor, which clears it
  }

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const {
    *op_kernel = nullptr;
    const char* op = static_cast<const TOp*>(this)->GetName();
    std::string where = op;  // until the node's name is read
    return ToStatus(where, [&] {
      const KernelAttributes attributes(api, info, op);
      where = attributes.Where();
      *op_kernel = new TKernel(attributes);
    });
  }

  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

}  // namespace onnx2snn
