// KernelAttributes (attributes.h): attribute reads through the OrtApi kernel-info calls.
#include "common/attributes.h"

#include <stdexcept>

namespace onnx2snn {
namespace {

// The node's name, "" when the runtime gives none.
std::string NodeName(const OrtApi& api, const OrtKernelInfo* info) {
  std::string name;
  size_t size = 0;
  if (OrtStatus* st = api.KernelInfo_GetNodeName(info, nullptr, &size)) {
    api.ReleaseStatus(st);
    return name;
  }
  if (size == 0) return name;
  name.resize(size);
  if (OrtStatus* st = api.KernelInfo_GetNodeName(info, &name[0], &size)) {
    api.ReleaseStatus(st);
    size = 1;
  }
  name.resize(size - 1);  // drop the '\0'
  return name;
}

// Whether `st` is an error; releases it.
bool Failed(const OrtApi& api, OrtStatus* st) {
  if (st == nullptr) return false;
  api.ReleaseStatus(st);
  return true;
}

// "a" or "b" / "a", "b" or "c"
std::string ChoiceList(std::initializer_list<const char*> choices) {
  std::string list;
  size_t i = 0;
  for (const char* c : choices) {
    if (i > 0) list += i + 1 == choices.size() ? " or " : ", ";
    list += std::string("\"") + c + "\"";
    ++i;
  }
  return list;
}

}  // namespace

KernelAttributes::KernelAttributes(const OrtApi& api, const OrtKernelInfo* info, const char* op)
    : api_(api), info_(info), where_(std::string(op) + " node '" + NodeName(api, info) + "'") {}

bool KernelAttributes::Has(const char* name) const {
  int64_t i = 0;
  float f = 0.0f;
  size_t size = 0;
  return !Failed(api_, api_.KernelInfoGetAttribute_int64(info_, name, &i)) ||
         !Failed(api_, api_.KernelInfoGetAttribute_float(info_, name, &f)) ||
         !Failed(api_, api_.KernelInfoGetAttribute_string(info_, name, nullptr, &size)) ||
         !Failed(api_, api_.KernelInfoGetAttributeArray_int64(info_, name, nullptr, &size)) ||
         !Failed(api_, api_.KernelInfoGetAttributeArray_float(info_, name, nullptr, &size));
}

void KernelAttributes::CheckRange(const char* name, int64_t value, int64_t min, int64_t max) const {
  if (value >= min && value <= max) return;
  const std::string range = max == kNoMax ? ">= " + std::to_string(min)
                                          : "in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  throw std::invalid_argument(std::string("attribute '") + name + "' must be " + range + ", got " +
                              std::to_string(value));
}

int64_t KernelAttributes::RequiredInt(const char* name, int64_t min, int64_t max) const {
  int64_t value = 0;
  if (OrtStatus* st = api_.KernelInfoGetAttribute_int64(info_, name, &value)) {
    const std::string cause = api_.GetErrorMessage(st);
    api_.ReleaseStatus(st);
    throw std::invalid_argument(std::string("required int attribute '") + name + "' is missing or not an int (" +
                                cause + ")");
  }
  CheckRange(name, value, min, max);
  return value;
}

int64_t KernelAttributes::OptionalInt(const char* name, int64_t fallback, int64_t min, int64_t max) const {
  int64_t value = fallback;
  if (Failed(api_, api_.KernelInfoGetAttribute_int64(info_, name, &value))) {
    if (Has(name)) throw std::invalid_argument(std::string("attribute '") + name + "' must be an int");
    return fallback;
  }
  CheckRange(name, value, min, max);
  return value;
}

size_t KernelAttributes::Choice(const char* name, std::initializer_list<const char*> choices, size_t fallback) const {
  size_t size = 0;
  if (Failed(api_, api_.KernelInfoGetAttribute_string(info_, name, nullptr, &size))) {
    if (Has(name)) {
      throw std::invalid_argument(std::string("attribute '") + name + "' must be the string " + ChoiceList(choices));
    }
    return fallback;
  }
  std::string value(size, '\0');
  if (OrtStatus* st = api_.KernelInfoGetAttribute_string(info_, name, &value[0], &size)) {
    const std::string cause = api_.GetErrorMessage(st);
    api_.ReleaseStatus(st);
    throw std::invalid_argument(std::string("cannot read attribute '") + name + "' (" + cause + ")");
  }
  value.resize(size > 0 ? size - 1 : 0);
  size_t index = 0;
  for (const char* c : choices) {
    if (value == c) return index;
    ++index;
  }
  throw std::invalid_argument(std::string("attribute '") + name + "' must be " + ChoiceList(choices) + ", got \"" +
                              value + "\"");
}

}  // namespace onnx2snn
