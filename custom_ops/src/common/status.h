// Error reporting of every kernel: ToStatus runs a step that throws (reading the
// attributes in CreateKernelV2, a Compute) and returns what it threw as an
// OrtStatus whose message starts with the node, "IFNeuron node 'n0': ...".
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

#include "onnxruntime_cxx_api.h"

namespace onnx2snn {

// Runs f(); nullptr when it returns, else an OrtStatus "<where>: <what it threw>":
// std::invalid_argument (a bad attribute, input or setting) is ORT_INVALID_ARGUMENT,
// an Ort::Exception keeps its code, anything else is ORT_FAIL. `where` is read only
// after f() has thrown, so f may fill it in (CreateKernelV2 does, once it has the
// node's name).
template <typename F>
OrtStatusPtr ToStatus(const std::string& where, F&& f) noexcept {
  const OrtApi& api = Ort::GetApi();
  try {
    f();
    return nullptr;
  } catch (const Ort::Exception& e) {
    return api.CreateStatus(e.GetOrtErrorCode(), (where + ": " + e.what()).c_str());
  } catch (const std::invalid_argument& e) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, (where + ": " + e.what()).c_str());
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_FAIL, (where + ": " + e.what()).c_str());
  } catch (...) {
    return api.CreateStatus(ORT_FAIL, (where + ": unknown error").c_str());
  }
}

}  // namespace onnx2snn
