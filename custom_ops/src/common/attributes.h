// Reading and checking a node's attributes when its kernel is created: one
// KernelAttributes per CreateKernelV2, with int attributes (required or with a
// default, in a range) and string choices. Every failure throws
// std::invalid_argument naming the attribute; ToStatus adds the node.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "onnxruntime_cxx_api.h"

namespace onnx2snn {

class KernelAttributes {
 public:
  static constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();

  // op: the op's name ("IFNeuron"), for Where().
  KernelAttributes(const OrtApi& api, const OrtKernelInfo* info, const char* op);

  // How messages name the node: "IFNeuron node 'n0'" ('' when the runtime gives no name).
  const std::string& Where() const { return where_; }

  // The int attribute `name`, which must be present and in [min, max].
  int64_t RequiredInt(const char* name, int64_t min, int64_t max = kNoMax) const;
  // The int attribute `name` in [min, max], or `fallback` when the node has none.
  int64_t OptionalInt(const char* name, int64_t fallback, int64_t min, int64_t max = kNoMax) const;
  // The index in `choices` of the string attribute `name`, or `fallback` when the node has none.
  size_t Choice(const char* name, std::initializer_list<const char*> choices, size_t fallback) const;

 private:
  bool Has(const char* name) const;  // an attribute of that name, of any type
  void CheckRange(const char* name, int64_t value, int64_t min, int64_t max) const;

  const OrtApi& api_;
  const OrtKernelInfo* info_;
  std::string where_;
};

}  // namespace onnx2snn
