// onnxruntime side of the CUDA IFNeuron: the same attribute and shape checks
// as the CPU kernel (common/neuron_inputs.h), then a launch on the session's
// compute stream.
#include "cuda/if_neuron_cuda.h"

#include <stdexcept>
#include <string>

namespace onnx2snn {

IFNeuronCudaKernel::IFNeuronCudaKernel(const KernelAttributes& attributes)
    : KernelBase(attributes.Where() + " (CUDA)"),
      timesteps_(attributes.RequiredInt("timesteps", 1)),
      reset_(ReadReset(attributes)) {
  const NeuronLayout layout = ReadNeuronLayout(attributes);
  if (layout.channel_block != 1 || layout.repeat_input) {  // CPU-session rewrites only
    throw std::invalid_argument("channel_block and repeat_input are not supported by the CUDA kernel");
  }
}

void IFNeuronCudaKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  const IFNeuronProblem p = PrepareIFNeuron(ctx, timesteps_, reset_);
  if (p.x2 != nullptr) throw std::invalid_argument("input X2 is not supported by the CUDA kernel");
  if (p.step_size == 0) return;
  IFNeuronCudaArgs a{};
  a.x = p.x;
  a.y = p.y;
  a.threshold = p.threshold;
  a.v_init = p.v_init;
  a.timesteps = p.timesteps;
  a.step_size = p.step_size;
  a.channels = p.channels;
  a.inner = p.inner;
  a.per_channel = p.per_channel ? 1 : 0;
  a.subtract = p.reset == ResetMode::kSubtract ? 1 : 0;
  if (p.v_init == nullptr) {
    a.v_init_mode = 0;
  } else if (p.v_init_size == 1) {
    a.v_init_mode = 1;
  } else if (p.v_init_size == p.step_size) {
    a.v_init_mode = 2;
  } else {
    a.v_init_mode = 3;
    a.rank = static_cast<int32_t>(p.step_dims.size());
    for (size_t d = 0; d < p.step_dims.size(); ++d) {
      a.dims[d] = p.step_dims[d];
      a.v_init_strides[d] = p.v_init_strides[d];
    }
  }
  if (const char* err = LaunchIFNeuronCuda(a, ctx.GetGPUComputeStream())) {
    throw std::runtime_error(std::string("CUDA launch failed: ") + err);
  }
}

}  // namespace onnx2snn
