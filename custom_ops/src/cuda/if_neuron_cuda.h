// IFNeuron for the CUDA execution provider: same op, same semantics and the
// same bit-exact results as the CPU kernel (cpu/if_neuron.h). Built only with
// -DONNX2SNN_USE_CUDA=ON.
//
// if_neuron_cuda.cc holds the onnxruntime side (shapes, attributes, stream);
// if_neuron.cu the device code, which sees no onnxruntime type.
#pragma once

#include <cstdint>
#include <string>

#include "common/kernel_base.h"
#include "common/neuron_inputs.h"

namespace onnx2snn {

// Everything the device kernel needs, by value (v_init broadcast as strides).
struct IFNeuronCudaArgs {
  const float* x;
  float* y;
  const float* threshold;
  const float* v_init;  // nullptr: 0
  int64_t timesteps;
  int64_t step_size;
  int64_t channels;
  int64_t inner;
  int32_t per_channel;
  int32_t subtract;
  int32_t rank;  // of one step [N, C, ...]; used when v_init needs a general broadcast
  int32_t v_init_mode;  // 0: none, 1: scalar, 2: same size, 3: general broadcast
  int64_t dims[kIFNeuronMaxRank];
  int64_t v_init_strides[kIFNeuronMaxRank];
};

// Launches the kernel on `stream` (a cudaStream_t); returns a CUDA error string or nullptr.
const char* LaunchIFNeuronCuda(const IFNeuronCudaArgs& args, void* stream);

// The CPU kernel's attributes; channel_block and repeat_input (CPU-session rewrites) are refused.
class IFNeuronCudaKernel : public KernelBase<IFNeuronCudaKernel> {
 public:
  explicit IFNeuronCudaKernel(const KernelAttributes& attributes);
  void Compute(OrtKernelContext* context) const;

 private:
  int64_t timesteps_;
  ResetMode reset_;
};

struct IFNeuronCudaOp : OpBase<IFNeuronCudaOp, IFNeuronCudaKernel> {
  IFNeuronCudaOp() : OpBase(InferNeuronShape) {}  // the schema is the CPU op's
  const char* GetName() const { return "IFNeuron"; }
  const char* GetExecutionProviderType() const { return "CUDAExecutionProvider"; }

  // The CPU op's inputs (onnxruntime requires the same count for every version of an
  // op); X2 is a CPU-session rewrite and is refused here.
  size_t GetInputTypeCount() const { return 4; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index >= 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
};

}  // namespace onnx2snn
