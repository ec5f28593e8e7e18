// ReadReset, ReadNeuronLayout and PrepareIFNeuron (neuron_inputs.h).
#include "common/neuron_inputs.h"

#include <sstream>
#include <stdexcept>
#include <string>

namespace onnx2snn {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

int64_t Product(std::vector<int64_t>::const_iterator first, std::vector<int64_t>::const_iterator last) {
  int64_t n = 1;
  for (; first != last; ++first) n *= *first;
  return n;
}

}  // namespace

ResetMode ReadReset(const KernelAttributes& attributes) {
  return attributes.Choice("reset", {"subtract", "zero"}, 0) == 0 ? ResetMode::kSubtract : ResetMode::kZero;
}

NeuronLayout ReadNeuronLayout(const KernelAttributes& attributes) {
  NeuronLayout layout;
  layout.channel_block = attributes.OptionalInt("channel_block", 1, 1);
  layout.repeat_input = attributes.OptionalInt("repeat_input", 0, 0, 1) == 1;
  return layout;
}

IFNeuronProblem PrepareIFNeuron(Ort::KernelContext& ctx, int64_t timesteps, ResetMode reset,
                                const NeuronLayout& layout) {
  auto fail = [](const std::string& what) { throw std::invalid_argument(what); };

  const Ort::ConstValue x_value = ctx.GetInput(0);
  const std::vector<int64_t> x_shape = x_value.GetTensorTypeAndShapeInfo().GetShape();
  if (x_shape.size() < 2) {
    fail("input X must have rank >= 2 ([T*N, C, ...]), got shape " + ShapeString(x_shape));
  }
  const int64_t T = timesteps;
  const int64_t channel_block = layout.channel_block;
  if (!layout.repeat_input && x_shape[0] % T != 0) {
    fail("X.shape[0] = " + std::to_string(x_shape[0]) + " is not divisible by timesteps = " +
         std::to_string(T) + " (X must be [T*N, C, ...], time-major); X shape " +
         ShapeString(x_shape));
  }
  std::vector<int64_t> step_dims(x_shape);  // one step: [N, C, ...]
  std::vector<int64_t> y_shape(x_shape);
  if (layout.repeat_input) {
    y_shape[0] = x_shape[0] * T;
  } else {
    step_dims[0] = x_shape[0] / T;
  }
  const int64_t C = x_shape[1];

  IFNeuronProblem p;
  p.timesteps = T;
  p.channels = C;
  p.inner = Product(x_shape.begin() + 2, x_shape.end());
  p.step_size = Product(step_dims.begin(), step_dims.end());
  p.x_step = layout.repeat_input ? 0 : p.step_size;
  p.reset = reset;
  p.channel_block = channel_block;
  if (channel_block > 1 && (x_shape.size() != 4 || C % channel_block != 0 ||
                            kIFNeuronBlock % channel_block != 0)) {
    fail("channel_block = " + std::to_string(channel_block) + " needs X of rank 4 with X.shape[1] a " +
         "multiple of it (NCHWc layout) and a power of two up to " + std::to_string(kIFNeuronBlock) +
         ", got shape " + ShapeString(x_shape));
  }

  const Ort::ConstValue th_value = ctx.GetInput(1);
  const std::vector<int64_t> th_shape = th_value.GetTensorTypeAndShapeInfo().GetShape();
  if (th_shape.empty() || (th_shape.size() == 1 && th_shape[0] == 1)) {
    p.per_channel = false;
  } else if (th_shape.size() == 1 && th_shape[0] == C) {
    p.per_channel = true;
  } else {
    fail("threshold must have shape [], [1] or [C] with C = X.shape[1] = " + std::to_string(C) +
         ", got " + ShapeString(th_shape));
  }
  p.threshold = th_value.GetTensorData<float>();

  if (ctx.GetInputCount() > 2) {
    const Ort::ConstValue v0_value = ctx.GetInput(2);
    if (v0_value != nullptr) {
      const std::vector<int64_t> v0_shape = v0_value.GetTensorTypeAndShapeInfo().GetShape();
      const int64_t v0_size = Product(v0_shape.begin(), v0_shape.end());
      if (channel_block > 1) {  // NCHWc: one value, or one per channel
        if (v0_size != 1 && v0_size != C) {
          fail("with channel_block > 1, v_init must have 1 or C = " + std::to_string(C) +
               " elements, got shape " + ShapeString(v0_shape));
        }
        p.v_init = v0_value.GetTensorData<float>();
        p.v_init_size = v0_size;
        p.v_init_per_channel = v0_size != 1;
      } else {
        const size_t rank = step_dims.size();
        bool ok = v0_shape.size() <= rank;
        if (rank > kIFNeuronMaxRank) {
          fail("v_init is only supported for X of rank <= " + std::to_string(kIFNeuronMaxRank) +
               ", got shape " + ShapeString(x_shape));
        }
        p.v_init_strides.assign(rank, 0);
        int64_t stride = 1;
        for (size_t k = 1; ok && k <= v0_shape.size(); ++k) {  // right-aligned, numpy rules
          const int64_t vd = v0_shape[v0_shape.size() - k];
          const int64_t sd = step_dims[rank - k];
          if (vd == sd) {
            p.v_init_strides[rank - k] = vd == 1 ? 0 : stride;
          } else if (vd != 1) {
            ok = false;
          }
          stride *= vd;
        }
        if (!ok) {
          fail("v_init of shape " + ShapeString(v0_shape) +
               " is not broadcastable to one time step " + ShapeString(step_dims) +
               " (X shape " + ShapeString(x_shape) + ", timesteps " + std::to_string(T) + ")");
        }
        p.v_init = v0_value.GetTensorData<float>();
        p.v_init_size = v0_size;
        p.step_dims = step_dims;
      }
    }
  }

  const float* x2 = nullptr;
  if (ctx.GetInputCount() > 3) {
    const Ort::ConstValue x2_value = ctx.GetInput(3);
    if (x2_value != nullptr) {
      const std::vector<int64_t> x2_shape = x2_value.GetTensorTypeAndShapeInfo().GetShape();
      if (x2_shape != x_shape || layout.repeat_input) {
        fail("X2 must have the shape of X " + ShapeString(x_shape) + " (and no repeat_input), got " +
             ShapeString(x2_shape));
      }
      x2 = x2_value.GetTensorData<float>();
    }
  }

  Ort::UnownedValue y_value = ctx.GetOutput(0, y_shape);
  if (p.step_size == 0) return p;  // empty tensor: nothing to compute
  p.x2 = x2;
  p.x = x_value.GetTensorData<float>();
  p.y = y_value.GetTensorMutableData<float>();
  return p;
}

}  // namespace onnx2snn
