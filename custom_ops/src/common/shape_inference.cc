// InferSameShape and InferNeuronShape (shape_inference.h).
//
// The output's shape is left unknown (nothing set) when input 0's is not fully
// known: no shape (reported as rank 0: every op here needs rank >= 1), a dim that
// is neither a number nor a symbol (the C API would write it as the number -1,
// which could clash with a declared dim), or, with repeat_input, a dim 0 that is
// not a number.
#include "common/shape_inference.h"

#include <cstdint>
#include <limits>
#include <new>
#include <vector>

#define ONNX2SNN_RETURN_IF_ERROR(call)         \
  do {                                         \
    if (OrtStatus* st_ = (call)) return st_;   \
  } while (0)

namespace onnx2snn {
namespace {

// The int attribute `name` of the node, or `fallback` when it has none (or not an int).
int64_t IntAttribute(const OrtApi& api, OrtShapeInferContext* ctx, const char* name, int64_t fallback) {
  const OrtOpAttr* attr = nullptr;
  if (OrtStatus* st = api.ShapeInferContext_GetAttribute(ctx, name, &attr)) {
    api.ReleaseStatus(st);
    return fallback;
  }
  int64_t value = fallback;
  size_t size = 0;
  if (OrtStatus* st = api.ReadOpAttr(attr, ORT_OP_ATTR_INT, &value, sizeof(value), &size)) {
    api.ReleaseStatus(st);
    return fallback;
  }
  return value;
}

// Output 0 := input 0 with dim 0 times `repeat` (>= 1).
OrtStatusPtr InferShape(OrtShapeInferContext* ctx, int64_t repeat) {
  const OrtApi& api = Ort::GetApi();
  OrtTensorTypeAndShapeInfo* in = nullptr;  // owned by ctx
  ONNX2SNN_RETURN_IF_ERROR(api.ShapeInferContext_GetInputTypeShape(ctx, 0, &in));
  size_t rank = 0;
  ONNX2SNN_RETURN_IF_ERROR(api.GetDimensionsCount(in, &rank));
  if (rank == 0) return nullptr;
  std::vector<int64_t> dims(rank);
  std::vector<const char*> symbols(rank, nullptr);
  ONNX2SNN_RETURN_IF_ERROR(api.GetDimensions(in, dims.data(), rank));
  ONNX2SNN_RETURN_IF_ERROR(api.GetSymbolicDimensions(in, symbols.data(), rank));
  for (size_t d = 0; d < rank; ++d) {
    if (dims[d] < 0 && (symbols[d] == nullptr || symbols[d][0] == '\0')) return nullptr;
  }
  if (repeat == 1) return api.ShapeInferContext_SetOutputTypeShape(ctx, 0, in);

  if (dims[0] < 0 || dims[0] > std::numeric_limits<int64_t>::max() / repeat) return nullptr;
  dims[0] *= repeat;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  ONNX2SNN_RETURN_IF_ERROR(api.GetTensorElementType(in, &type));
  OrtTensorTypeAndShapeInfo* out = nullptr;
  ONNX2SNN_RETURN_IF_ERROR(api.CreateTensorTypeAndShapeInfo(&out));
  OrtStatus* st = api.SetTensorElementType(out, type);
  if (st == nullptr) st = api.SetDimensions(out, dims.data(), rank);
  if (st == nullptr) st = api.SetSymbolicDimensions(out, symbols.data(), rank);
  if (st == nullptr) st = api.ShapeInferContext_SetOutputTypeShape(ctx, 0, out);
  api.ReleaseTensorTypeAndShapeInfo(out);
  return st;
}

}  // namespace

OrtStatusPtr ORT_API_CALL InferSameShape(const OrtCustomOp*, OrtShapeInferContext* ctx) {
  try {
    return InferShape(ctx, 1);
  } catch (const std::bad_alloc&) {
    return nullptr;  // the shape stays unknown
  }
}

OrtStatusPtr ORT_API_CALL InferNeuronShape(const OrtCustomOp*, OrtShapeInferContext* ctx) {
  try {
    const OrtApi& api = Ort::GetApi();
    const int64_t repeat_input = IntAttribute(api, ctx, "repeat_input", 0);
    if (repeat_input == 0) return InferShape(ctx, 1);
    const int64_t timesteps = IntAttribute(api, ctx, "timesteps", 0);
    // A bad value is reported when the kernel is created; the shape stays unknown.
    if (repeat_input != 1 || timesteps < 1) return nullptr;
    return InferShape(ctx, timesteps);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

}  // namespace onnx2snn
