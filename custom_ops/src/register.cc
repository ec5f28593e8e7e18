// The library's exported C functions: RegisterCustomOps adds the "onnx2snn"
// domain, with every op of the library, to a session's options;
// onnx2snn_kernel_isa tells which instruction set the CPU neuron kernels use.
//
// Built against the ONNX Runtime 1.17 headers (ORT_API_VERSION 17); newer
// runtimes serve that API version unchanged, so one binary loads in any
// onnxruntime >= 1.17.
#include <exception>
#include <mutex>
#include <string>

#include "common/isa.h"
#include "cpu/bif_count.h"
#include "cpu/bif_neuron.h"
#include "cpu/if_neuron.h"
#include "onnxruntime_cxx_api.h"
#include "cpu/ts_neuron.h"
#ifdef ONNX2SNN_USE_CUDA
#include "cuda/if_neuron_cuda.h"
#endif

#if defined(_WIN32)
#define ONNX2SNN_EXPORT __declspec(dllexport)
#else
#define ONNX2SNN_EXPORT __attribute__((visibility("default")))
#endif

namespace {

constexpr const char* kDomain = "onnx2snn";

// The ops and their domain live as long as the library is loaded: sessions
// created later, from any thread, share them (they are read-only after
// construction). The domain is deliberately never released, so nothing runs at
// library unload that could call into an onnxruntime already torn down.
// A throwing initialiser leaves the static uninitialised; the next call retries.
OrtCustomOpDomain* SharedDomain() {
  static const onnx2snn::IFNeuronOp if_neuron;
  static const onnx2snn::BIFNeuronOp bif_neuron;
  static const onnx2snn::BIFCountOp bif_count;
  static const onnx2snn::TSNeuronOp ts_neuron;
#ifdef ONNX2SNN_USE_CUDA
  static const onnx2snn::IFNeuronCudaOp if_neuron_cuda;  // same op, CUDAExecutionProvider
#endif
  static OrtCustomOpDomain* const domain = [] {
    Ort::CustomOpDomain d{kDomain};
    d.Add(&if_neuron);
    d.Add(&bif_neuron);
    d.Add(&bif_count);
    d.Add(&ts_neuron);
#ifdef ONNX2SNN_USE_CUDA
    d.Add(&if_neuron_cuda);
#endif
    return d.release();
  }();
  return domain;
}

}  // namespace

extern "C" ONNX2SNN_EXPORT OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  if (api_base == nullptr) return nullptr;  // nothing to report an error through
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {  // runtime older than the headers: report via API 1
    const OrtApi* api1 = api_base->GetApi(1);
    if (api1 == nullptr) return nullptr;
    const std::string msg = std::string("onnx2snn_ops needs onnxruntime >= 1.17 (C API ") +
                            std::to_string(ORT_API_VERSION) + "), this runtime is " +
                            api_base->GetVersionString();
    return api1->CreateStatus(ORT_FAIL, msg.c_str());
  }

  try {
    static std::once_flag init_once;
    std::call_once(init_once, [api] { Ort::InitApi(api); });
    Ort::ThrowOnError(api->AddCustomOpDomain(options, SharedDomain()));
  } catch (const Ort::Exception& e) {
    const std::string msg = std::string("onnx2snn_ops: RegisterCustomOps failed: ") + e.what();
    return api->CreateStatus(e.GetOrtErrorCode(), msg.c_str());
  } catch (const std::exception& e) {
    const std::string msg = std::string("onnx2snn_ops: RegisterCustomOps failed: ") + e.what();
    return api->CreateStatus(ORT_FAIL, msg.c_str());
  }
  return nullptr;
}

// The instruction set of the step loops that IFNeuron and BIFNeuron kernels created
// now use (each kernel reads it once, when its session creates it): "base", "avx2"
// or "avx512", the widest the CPU has lowered to ONNX2SNN_KERNEL_ISA; nullptr when
// that variable holds an unknown value (kernels then fail to be created, saying so).
// Needs no onnxruntime: callable through ctypes on the loaded library.
extern "C" ONNX2SNN_EXPORT const char* onnx2snn_kernel_isa() {
  try {
    return onnx2snn::IsaName(onnx2snn::KernelIsa());
  } catch (...) {
    return nullptr;
  }
}
