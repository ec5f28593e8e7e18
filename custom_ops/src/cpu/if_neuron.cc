// CPU kernel of IFNeuron; semantics in if_neuron.h.
#include "cpu/if_neuron.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <sstream>
#include <stdexcept>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define ONNX2SNN_STREAM_STORES 1
#endif

namespace onnx2snn {
namespace {

// Below this many element-steps (T*M) one thread is faster than dispatching.
constexpr int64_t kMinParallelWork = int64_t{1} << 16;

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

int64_t Product(std::vector<int64_t>::const_iterator first,
                std::vector<int64_t>::const_iterator last) {
  int64_t n = 1;
  for (; first != last; ++first) n *= *first;
  return n;
}

// One time step over n contiguous elements, in exactly the float32 sequence of
// the reference: v = v + x; s = v >= theta; y = s ? theta : 0; v = s ? v - theta : v
// (reset to zero: v = s ? 0 : v). The threshold of element i is th[i] (kLanes == 0),
// th[0] (kLanes == 1: a layer-wise threshold or one channel's run, no threshold
// array to stream) or th[i % kLanes] (an NCHWc channel block, n a multiple of
// kLanes). The selects have no branch, so the loops vectorise; for the subtraction
// that needs -fno-trapping-math (CMakeLists.txt), which lets GCC compute v - theta
// in every lane and keep it only where s. It changes no result, only FP-exception flags.
// Run through CallIsa (if_neuron.h) for the instruction set chosen at run time.
template <int64_t kLanes, bool kSubtract, bool kAdd>
struct StepBody {
  ONNX2SNN_ALWAYS_INLINE void operator()(const float* __restrict x, const float* __restrict x2,
                                         float* __restrict y, float* __restrict v, const float* __restrict th,
                                         int64_t n) const {
    if (n <= 0) return;
    const int64_t width = kLanes > 1 ? kLanes : n;  // one pass over n, or n / kLanes channel blocks
    for (int64_t i0 = 0; i0 < n; i0 += width) {
      for (int64_t l = 0; l < width; ++l) {
        const int64_t i = i0 + l;
        const float t = kLanes == 0 ? th[i] : (kLanes == 1 ? th[0] : th[l]);
        const float vi = v[i] + (kAdd ? x[i] + x2[i] : x[i]);
        const bool s = vi >= t;
        y[i] = s ? t : 0.0f;
        v[i] = s ? (kSubtract ? vi - t : 0.0f) : vi;
      }
    }
  }
};

// Outputs of at least this many bytes are written with non-temporal (streaming)
// stores: Y goes to memory without each of its lines being read first
// (write-allocate), the way memcpy writes large copies, and does not evict the
// membrane state and the next rows of X from the caches. Smaller outputs are
// better left in the caches for the op that reads them next. A constant: the
// last-level cache size the OS reports is unreliable in VMs (glibc says 320 MiB
// for this 32 MiB-L3 VM).
constexpr int64_t kStreamBytes = int64_t{64} << 20;

#ifdef ONNX2SNN_STREAM_STORES
// StepBody<1, kSubtract, kAdd> with streaming stores of y; the same float32 results:
// y = s ? th : 0, and v - y equals s ? v - th : v exactly (v - 0 = v).
template <bool kSubtract, bool kAdd>
void StepStream(const float* __restrict x, const float* __restrict x2, float* __restrict y, float* __restrict v,
                float th, int64_t n) {
  auto at = [](const float* a, int64_t i) { return kAdd ? a + i : nullptr; };
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<std::uintptr_t>(y + i) & 15) != 0; ++i) {  // align y
    StepBody<1, kSubtract, kAdd>{}(x + i, at(x2, i), y + i, v + i, &th, 1);
  }
  const __m128 th4 = _mm_set1_ps(th);
  for (; i + 4 <= n; i += 4) {
    __m128 xi = _mm_loadu_ps(x + i);
    if (kAdd) xi = _mm_add_ps(xi, _mm_loadu_ps(x2 + i));
    const __m128 vi = _mm_add_ps(_mm_loadu_ps(v + i), xi);
    const __m128 s = _mm_cmpge_ps(vi, th4);
    const __m128 out = _mm_and_ps(s, th4);
    _mm_stream_ps(y + i, out);
    _mm_storeu_ps(v + i, kSubtract ? _mm_sub_ps(vi, out) : _mm_andnot_ps(s, vi));
  }
  for (; i < n; ++i) StepBody<1, kSubtract, kAdd>{}(x + i, at(x2, i), y + i, v + i, &th, 1);  // tail
}
#endif

// All T steps of elements [begin, begin + n) (v: their potentials; th: scratch);
// kAdd: the current is x + x2.
template <Isa kIsa, bool kSubtract, bool kAdd>
void RunSteps(const IFNeuronProblem& p, int64_t begin, int64_t n, float* v, float* th) {
#ifdef ONNX2SNN_STREAM_STORES
  const bool stream = p.timesteps * p.step_size * static_cast<int64_t>(sizeof(float)) >= kStreamBytes;
#endif
  ForEachStepRun<kAdd>(p, begin, n, th, [&](auto lanes, const float* x, const float* x2, float* y, int64_t i,
                                            int64_t length, const float* theta) {
    constexpr int64_t kLanes = decltype(lanes)::value;
#ifdef ONNX2SNN_STREAM_STORES
    if (kLanes == 1 && stream) {
      StepStream<kSubtract, kAdd>(x, x2, y, v + i, theta[0], length);
      return;
    }
#endif
    CallIsa<kIsa, StepBody<kLanes, kSubtract, kAdd>>(x, x2, y, v + i, theta, length);
  });
#ifdef ONNX2SNN_STREAM_STORES
  if (stream) _mm_sfence();  // the streamed stores are visible before the block is reported done
#endif
}

// dst[i] = values[channel of element begin+i] in the NCHWc layout.
void FillBlocked(const IFNeuronProblem& p, const float* values, int64_t begin, int64_t n, float* dst) {
  const int64_t b = p.channel_block;
  ForEachChannelRun(p, values, begin, n, [&](int64_t i, int64_t length, const float* group) {
    for (int64_t j = 0; j < length; j += b) {
      std::memcpy(dst + i + j, group, static_cast<size_t>(b) * sizeof(float));
    }
  });
}

}  // namespace

// th[i] = theta of the channel of element begin+i (channel = (e / S) % C, or
// the NCHWc channel for channel_block > 1).
void FillThreshold(const IFNeuronProblem& p, int64_t begin, int64_t n, float* th) {
  if (!p.per_channel) {
    std::fill(th, th + n, p.threshold[0]);
    return;
  }
  if (p.channel_block > 1) {
    FillBlocked(p, p.threshold, begin, n, th);
    return;
  }
  int64_t r = begin % p.inner;
  int64_t c = (begin / p.inner) % p.channels;
  for (int64_t i = 0; i < n; ++i) {
    th[i] = p.threshold[c];
    if (++r == p.inner) {
      r = 0;
      if (++c == p.channels) c = 0;
    }
  }
}

// v[i] = v_init broadcast to the step shape, at element begin+i.
void FillVInit(const IFNeuronProblem& p, int64_t begin, int64_t n, float* v) {
  if (p.v_init == nullptr) {
    std::fill(v, v + n, 0.0f);
  } else if (p.v_init_size == 1) {
    std::fill(v, v + n, p.v_init[0]);
  } else if (p.v_init_per_channel) {
    FillBlocked(p, p.v_init, begin, n, v);
  } else if (p.v_init_size == p.step_size) {  // same element count: no broadcast
    std::memcpy(v, p.v_init + begin, static_cast<size_t>(n) * sizeof(float));
  } else {  // general broadcast: walk the multi-index of the step shape
    const size_t rank = p.step_dims.size();  // <= kIFNeuronMaxRank, checked in Compute
    int64_t index[kIFNeuronMaxRank];
    int64_t rest = begin;
    int64_t offset = 0;
    for (size_t d = rank; d-- > 0;) {
      index[d] = rest % p.step_dims[d];
      rest /= p.step_dims[d];
      offset += index[d] * p.v_init_strides[d];
    }
    for (int64_t i = 0; i < n; ++i) {
      v[i] = p.v_init[offset];
      for (size_t d = rank; d-- > 0;) {  // odometer increment
        offset += p.v_init_strides[d];
        if (++index[d] < p.step_dims[d]) break;
        offset -= index[d] * p.v_init_strides[d];
        index[d] = 0;
      }
    }
  }
}

namespace {

void RunBlockTask(void* problem, size_t block) {
  IFNeuronRunBlock(*static_cast<const IFNeuronProblem*>(problem),
                   static_cast<int64_t>(block));
}

}  // namespace

void IFNeuronRunBlock(const IFNeuronProblem& p, int64_t block) noexcept {
  alignas(64) float v[kIFNeuronBlock];
  alignas(64) float th[kIFNeuronBlock];
  const int64_t begin = block * kIFNeuronBlock;
  const int64_t n = std::min(kIFNeuronBlock, p.step_size - begin);
  FillVInit(p, begin, n, v);
  const bool add = p.x2 != nullptr;
  WithIsa(p.isa, [&](auto isa) {
    constexpr Isa kIsa = decltype(isa)::value;
    if (p.reset == ResetMode::kSubtract) {
      add ? RunSteps<kIsa, true, true>(p, begin, n, v, th) : RunSteps<kIsa, true, false>(p, begin, n, v, th);
    } else {
      add ? RunSteps<kIsa, false, true>(p, begin, n, v, th) : RunSteps<kIsa, false, false>(p, begin, n, v, th);
    }
  });
}

Isa KernelIsa() {
#ifdef ONNX2SNN_ISA_DISPATCH
  static const Isa best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
      return Isa::kAvx512;
    }
    return __builtin_cpu_supports("avx2") ? Isa::kAvx2 : Isa::kBase;
  }();
  const char* requested = std::getenv("ONNX2SNN_KERNEL_ISA");
  if (requested == nullptr) return best;
  const std::string r(requested);
  if (r != "base" && r != "avx2" && r != "avx512") {
    throw std::invalid_argument("environment variable ONNX2SNN_KERNEL_ISA must be base, avx2 or avx512 (or unset), "
                                "got '" + r + "'");
  }
  const Isa want = r == "base" ? Isa::kBase : (r == "avx2" ? Isa::kAvx2 : Isa::kAvx512);
  return want < best ? want : best;
#else
  return Isa::kBase;
#endif
}

std::string IFNeuronKernel::Where() const {
  return "IFNeuron node '" + node_name_ + "'";
}

IFNeuronProblem PrepareIFNeuron(Ort::KernelContext& ctx, int64_t timesteps, ResetMode reset,
                                const std::string& where, const NeuronLayout& layout) {
  auto fail = [&where](const std::string& what) {
    throw std::invalid_argument(where + ": " + what);
  };

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
  try {
    p.isa = KernelIsa();
  } catch (const std::invalid_argument& e) {
    fail(e.what());
  }
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

void IFNeuronKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  IFNeuronProblem p = PrepareIFNeuron(ctx, timesteps_, reset_, Where(), layout_);
  if (p.step_size == 0) return;
  const int64_t T = p.timesteps;

  const int64_t blocks = IFNeuronBlockCount(p);
  if (blocks > 1 && p.step_size * T >= kMinParallelWork) {
    // Intra-op thread pool of the session; runs inline when it has one thread.
    OrtStatus* status = Ort::GetApi().KernelContext_ParallelFor(
        context, RunBlockTask, static_cast<size_t>(blocks), 0, &p);
    if (status == nullptr) return;
    Ort::GetApi().ReleaseStatus(status);  // no pool available: do it here
  }
  for (int64_t b = 0; b < blocks; ++b) IFNeuronRunBlock(p, b);
}

OrtStatusPtr IFNeuronKernel::ComputeV2(OrtKernelContext* context) const {
  return ComputeToStatus(Where(), [&] { Compute(context); });
}

std::string KernelNodeName(const OrtApi& api, const OrtKernelInfo* info) {
  std::string node_name;
  size_t size = 0;
  if (api.KernelInfo_GetNodeName(info, nullptr, &size) == nullptr && size > 0) {
    node_name.resize(size);
    if (OrtStatus* st = api.KernelInfo_GetNodeName(info, &node_name[0], &size)) {
      api.ReleaseStatus(st);
      size = 1;
    }
    node_name.resize(size - 1);  // drop the '\0'
  }
  return node_name;
}

OrtStatusPtr ReadNeuronLayout(const OrtApi& api, const OrtKernelInfo* info, const std::string& where,
                              NeuronLayout* layout) {
  auto read = [&](const char* name, int64_t fallback) {
    int64_t value = fallback;
    if (OrtStatus* st = api.KernelInfoGetAttribute_int64(info, name, &value)) {
      api.ReleaseStatus(st);  // absent: the default
      value = fallback;
    }
    return value;
  };
  const int64_t b = read("channel_block", 1);
  const int64_t repeat = read("repeat_input", 0);
  if (b < 1 || (repeat != 0 && repeat != 1)) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, (where + ": attributes channel_block (>= 1) and repeat_input " +
                                                   "(0 or 1) got " + std::to_string(b) + " and " +
                                                   std::to_string(repeat)).c_str());
  }
  layout->channel_block = b;
  layout->repeat_input = repeat == 1;
  return nullptr;
}

OrtStatusPtr ParseIFNeuronAttributes(const OrtApi& api, const OrtKernelInfo* info, int64_t* timesteps_out,
                                     ResetMode* reset_out, NeuronLayout* layout_out,
                                     std::string* node_name_out) {
  const std::string node_name = KernelNodeName(api, info);
  const std::string where = "IFNeuron node '" + node_name + "'";
  auto error = [&](const std::string& what, OrtStatus* cause) {
    std::string msg = where + ": " + what;
    if (cause != nullptr) {
      msg += std::string(" (") + api.GetErrorMessage(cause) + ")";
      api.ReleaseStatus(cause);
    }
    return api.CreateStatus(ORT_INVALID_ARGUMENT, msg.c_str());
  };

  int64_t timesteps = 0;
  if (OrtStatus* st = api.KernelInfoGetAttribute_int64(info, "timesteps", &timesteps)) {
    return error("required int attribute 'timesteps' is missing or not an int", st);
  }
  if (timesteps < 1) {
    return error("attribute 'timesteps' must be >= 1, got " + std::to_string(timesteps), nullptr);
  }

  ResetMode reset = ResetMode::kSubtract;
  size_t size = 0;
  if (OrtStatus* st = api.KernelInfoGetAttribute_string(info, "reset", nullptr, &size)) {
    api.ReleaseStatus(st);  // absent (default "subtract") or not a string
    int64_t as_int = 0;
    float as_float = 0.0f;
    OrtStatus* st_int = api.KernelInfoGetAttribute_int64(info, "reset", &as_int);
    OrtStatus* st_float = api.KernelInfoGetAttribute_float(info, "reset", &as_float);
    const bool present = st_int == nullptr || st_float == nullptr;
    if (st_int != nullptr) api.ReleaseStatus(st_int);
    if (st_float != nullptr) api.ReleaseStatus(st_float);
    if (present) {
      return error("attribute 'reset' must be the string \"subtract\" or \"zero\"", nullptr);
    }
  } else {
    std::string value(size, '\0');
    if (OrtStatus* st2 = api.KernelInfoGetAttribute_string(info, "reset", &value[0], &size)) {
      return error("cannot read attribute 'reset'", st2);
    }
    value.resize(size > 0 ? size - 1 : 0);
    if (value == "subtract") {
      reset = ResetMode::kSubtract;
    } else if (value == "zero") {
      reset = ResetMode::kZero;
    } else {
      return error("attribute 'reset' must be \"subtract\" or \"zero\", got \"" + value + "\"",
                   nullptr);
    }
  }

  if (OrtStatusPtr status = ReadNeuronLayout(api, info, where, layout_out)) return status;
  *timesteps_out = timesteps;
  *reset_out = reset;
  *node_name_out = node_name;
  return nullptr;
}

OrtStatusPtr IFNeuronOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info,
                                        void** op_kernel) const {
  *op_kernel = nullptr;
  int64_t timesteps = 0;
  ResetMode reset = ResetMode::kSubtract;
  NeuronLayout layout;
  std::string node_name;
  if (OrtStatusPtr status = ParseIFNeuronAttributes(api, info, &timesteps, &reset, &layout, &node_name)) {
    return status;
  }
  try {
    *op_kernel = new IFNeuronKernel(timesteps, reset, layout, node_name);
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_FAIL, ("IFNeuron node '" + node_name + "': " + e.what()).c_str());
  }
  return nullptr;
}

}  // namespace onnx2snn
