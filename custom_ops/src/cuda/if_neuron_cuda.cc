// onnxruntime side of the CUDA IFNeuron: the same shape checks as the CPU
// kernel (PrepareIFNeuron), then a launch on the session's compute stream.
#include "cuda/if_neuron_cuda.h"

#include <exception>
#include <stdexcept>

namespace onnx2snn {

OrtStatusPtr IFNeuronCudaKernel::ComputeV2(OrtKernelContext* context) const {
  const std::string where = "IFNeuron node '" + node_name_ + "' (CUDA)";
  return ComputeToStatus(where, [&] {
    Ort::KernelContext ctx(context);
    const IFNeuronProblem p = PrepareIFNeuron(ctx, timesteps_, reset_, where);
    if (p.x2 != nullptr) throw std::invalid_argument(where + ": input X2 is not supported by the CUDA kernel");
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
  });
}

OrtStatusPtr IFNeuronCudaOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info,
                                            void** op_kernel) const {
  *op_kernel = nullptr;
  int64_t timesteps = 0;
  ResetMode reset = ResetMode::kSubtract;
  NeuronLayout layout;
  std::string node_name;
  if (OrtStatusPtr status = ParseIFNeuronAttributes(api, info, &timesteps, &reset, &layout, &node_name)) {
    return status;
  }
  if (layout.channel_block != 1 || layout.repeat_input) {  // CPU-session rewrites only
    return api.CreateStatus(ORT_INVALID_ARGUMENT,
                            ("IFNeuron node '" + node_name +
                             "': channel_block and repeat_input are not supported by the CUDA kernel").c_str());
  }
  try {
    *op_kernel = new IFNeuronCudaKernel(timesteps, reset, node_name);
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_FAIL, ("IFNeuron node '" + node_name + "': " + e.what()).c_str());
  }
  return nullptr;
}

}  // namespace onnx2snn
