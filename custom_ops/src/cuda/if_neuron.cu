// Device code of IFNeuron (CUDA). One thread per element of a step walks the T
// steps in order, with the membrane potential in a register: reads of x and
// writes of y are coalesced at every step.
//
// Bit-exact to the numpy reference: __fadd_rn/__fsub_rn are IEEE
// round-to-nearest and never contracted, and the library is built with
// --fmad=false and without fast-math.
#include <cuda_runtime.h>

#include "cuda/if_neuron_cuda.h"

namespace onnx2snn {
namespace {

__device__ float InitialPotential(const IFNeuronCudaArgs& a, int64_t m) {
  switch (a.v_init_mode) {
    case 1:
      return a.v_init[0];
    case 2:
      return a.v_init[m];
    case 3: {
      int64_t offset = 0;
      for (int32_t d = a.rank - 1; d >= 0; --d) {
        offset += (m % a.dims[d]) * a.v_init_strides[d];
        m /= a.dims[d];
      }
      return a.v_init[offset];
    }
    default:
      return 0.0f;
  }
}

__global__ void IFNeuronKernelCuda(IFNeuronCudaArgs a) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; m < a.step_size;
       m += stride) {
    const float th = a.per_channel ? a.threshold[(m / a.inner) % a.channels] : a.threshold[0];
    float v = InitialPotential(a, m);
    const float* x = a.x + m;
    float* y = a.y + m;
    for (int64_t t = 0; t < a.timesteps; ++t) {
      v = __fadd_rn(v, x[t * a.step_size]);
      const bool s = v >= th;
      y[t * a.step_size] = s ? th : 0.0f;
      if (s) v = a.subtract ? __fsub_rn(v, th) : 0.0f;
    }
  }
}

}  // namespace

const char* LaunchIFNeuronCuda(const IFNeuronCudaArgs& args, void* stream) {
  constexpr int kThreads = 256;
  int64_t blocks = (args.step_size + kThreads - 1) / kThreads;
  if (blocks > 65535 * 8) blocks = 65535 * 8;  // grid-stride loop covers the rest
  IFNeuronKernelCuda<<<static_cast<unsigned>(blocks), kThreads, 0,
                       static_cast<cudaStream_t>(stream)>>>(args);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace onnx2snn
