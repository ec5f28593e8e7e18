// Output shape inference of the library's ops (OrtCustomOp::InferOutputShapeFn,
// onnxruntime >= 1.17): output 0 gets the type and shape of input 0, so that
// onnxruntime knows the shapes after an onnx2snn op without any declared.
//
// Written against the C API: the C++ wrapper of the 1.17 headers (a static
// InferOutputShape(Ort::ShapeInferContext&) picked up by Ort::CustomOpBase)
// writes 1 for every numeric dim in ShapeInferContext::SetOutputShape and
// releases input shape infos that the runtime owns.
#pragma once

#include "onnxruntime_cxx_api.h"

namespace onnx2snn {

using InferShapeFn = OrtStatusPtr(ORT_API_CALL*)(const OrtCustomOp* op, OrtShapeInferContext* ctx);

// Output 0 := input 0 (BIFCount, TSNeuron).
OrtStatusPtr ORT_API_CALL InferSameShape(const OrtCustomOp* op, OrtShapeInferContext* ctx);

// Output 0 := input 0, with dim 0 times `timesteps` when the node has repeat_input = 1
// (IFNeuron, BIFNeuron: X is then one step).
OrtStatusPtr ORT_API_CALL InferNeuronShape(const OrtCustomOp* op, OrtShapeInferContext* ctx);

}  // namespace onnx2snn
