// IFNeuron (domain "onnx2snn", version 1): integrate-and-fire neurons over T
// time steps folded into the batch axis, time-major.
//
//   inputs   X         float [T*N, C, ...]   row t*N+n = step t of sample n
//            threshold float [] / [1] / [C]  theta_c
//            v_init    float, optional, numpy-broadcastable to [N, C, ...]
//            X2        float, optional, shape of X (session-internal, see below)
//   attrs    timesteps int T >= 1 (required); reset "subtract" (default) | "zero";
//            channel_block int b >= 1 (default 1), repeat_input int 0|1 (default 0): see below
//   output   Y         float, shape of X, Y in {0, theta_c}
//
// Per element, for t = 0..T-1 in order, in float32:
//   v = v + x_t;  s = (v >= theta);  y_t = s ? theta : 0;
//   if (s) v = (reset == subtract) ? v - theta : 0;
// v starts at v_init (or 0). No state survives between two Run calls.
//
// channel_block b > 1 (used only inside sessions, by onnx2snn/blocked_layout.py;
// never in a written model): X and Y are in onnxruntime's NCHWc layout, rank 4,
// C = X.shape[1] a multiple of b, element (n, c, h, w) stored at
// ((n*C/b + c/b)*H*W + h*W + w)*b + c%b. The neuron of every element is the same;
// only the channel an element's theta_c belongs to changes. v_init must then have
// 1 or C elements (one per channel).
// repeat_input = 1 (also only inside sessions): X is one step [N, C, ...], the same
// input current at every step, and Y is [T*N, C, ...]: the op reads X T times
// instead of a Tile writing it T times.
// X2 (also only inside sessions): the input current is X + X2, added element by
// element in float32 exactly as the Add node it replaces (a residual Add whose
// only reader was this neuron), without writing the sum to memory.
// Ground truth: onnx2snn/neurons/if_neuron.py; the kernel matches it bit for bit.
#pragma once

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "onnxruntime_cxx_api.h"

// x86-64 with GCC or Clang: the neuron step loops are compiled for three instruction
// sets (the library itself targets baseline x86-64, so it runs on any such CPU) and
// KernelIsa() picks one at run time. Elsewhere only the baseline loops exist.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ONNX2SNN_ISA_DISPATCH 1
#define ONNX2SNN_TARGET_AVX2 __attribute__((target("avx2")))
#define ONNX2SNN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))
#define ONNX2SNN_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define ONNX2SNN_ALWAYS_INLINE inline
#endif

namespace onnx2snn {

enum class ResetMode { kSubtract, kZero };

// Instruction set of the step loops. The results are the same bit for bit in every
// one (the loops only add, compare, select and subtract, each correctly rounded
// in float32 whatever the vector width; no contraction, -ffp-contract=off).
enum class Isa { kBase, kAvx2, kAvx512 };

// The widest instruction set the CPU supports, lowered to the environment variable
// ONNX2SNN_KERNEL_ISA (base | avx2 | avx512) when it is set (for tests and benchmarks);
// throws std::invalid_argument for any other value of it.
Isa KernelIsa();

// Calls f(std::integral_constant<Isa, isa>{}) (kBase where there is no dispatch), so
// a kernel can instantiate its loops for the instruction set chosen at run time.
template <typename F>
void WithIsa(Isa isa, F&& f) {
#ifdef ONNX2SNN_ISA_DISPATCH
  if (isa == Isa::kAvx512) return f(std::integral_constant<Isa, Isa::kAvx512>{});
  if (isa == Isa::kAvx2) return f(std::integral_constant<Isa, Isa::kAvx2>{});
#endif
  (void)isa;
  f(std::integral_constant<Isa, Isa::kBase>{});
}

// CallIsa<kIsa, Body>(args...) runs Body{}(args...) compiled for the instruction set
// kIsa: Body is a struct whose operator() is ONNX2SNN_ALWAYS_INLINE, so its loops are
// inlined into, and vectorised for, one function per instruction set.
template <typename Body, typename... Args>
void CallBase(Args... args) {
  Body{}(args...);
}
#ifdef ONNX2SNN_ISA_DISPATCH
template <typename Body, typename... Args>
ONNX2SNN_TARGET_AVX2 void CallAvx2(Args... args) {
  Body{}(args...);
}
template <typename Body, typename... Args>
ONNX2SNN_TARGET_AVX512 void CallAvx512(Args... args) {
  Body{}(args...);
}
#endif

template <Isa kIsa, typename Body, typename... Args>
void CallIsa(Args... args) {
#ifdef ONNX2SNN_ISA_DISPATCH
  if constexpr (kIsa == Isa::kAvx512) {
    CallAvx512<Body>(args...);
    return;
  } else if constexpr (kIsa == Isa::kAvx2) {
    CallAvx2<Body>(args...);
    return;
  }
#endif
  CallBase<Body>(args...);
}

// One IFNeuron call with validated shapes; no onnxruntime types, so a CUDA
// kernel or a benchmark can reuse it.
struct IFNeuronProblem {
  const float* x = nullptr;          // [T, M] (M = N*C*S elements per step)
  const float* x2 = nullptr;         // optional second current, laid out as x (input X2)
  float* y = nullptr;                // [T, M]
  int64_t timesteps = 1;             // T
  int64_t step_size = 0;             // M
  int64_t channels = 1;              // C
  int64_t inner = 1;                 // S = prod(X.shape[2:])
  const float* threshold = nullptr;  // 1 value, or C values if per_channel
  bool per_channel = false;
  int64_t channel_block = 1;         // b: 1 = plain [N, C, ...]; > 1 = NCHWc (see above)
  int64_t x_step = 0;                // elements between steps of X: M, or 0 with repeat_input
  Isa isa = Isa::kBase;              // instruction set of the step loops (KernelIsa())
  ResetMode reset = ResetMode::kSubtract;
  // v_init, broadcast to the step shape: nullptr means 0 everywhere. For the
  // general case, step_dims/v_init_strides describe the step shape [N, C, ...]
  // and the v_init element stride along each of its axes (0 = broadcast).
  // With channel_block > 1, v_init has 1 or C values (v_init_per_channel).
  const float* v_init = nullptr;
  int64_t v_init_size = 0;
  bool v_init_per_channel = false;
  std::vector<int64_t> step_dims;
  std::vector<int64_t> v_init_strides;
};

// Elements per block: the membrane state and thresholds of one block (2 x 64 KiB)
// stay in L2 while the block walks all T steps, and each step reads and writes
// 64 KiB contiguous runs of X and Y: long enough for the hardware prefetchers,
// which stop at 4 KiB page boundaries (blocks of 1024 elements read one page per
// step and ran at 30-45% of copy bandwidth). Kernels keep their block buffers on
// the stack (at most 3 x 64 KiB).
constexpr int64_t kIFNeuronBlock = 16384;
// Highest X rank for which a v_init needing a general broadcast is supported.
constexpr size_t kIFNeuronMaxRank = 16;

inline int64_t IFNeuronBlockCount(const IFNeuronProblem& p) {
  return (p.step_size + kIFNeuronBlock - 1) / kIFNeuronBlock;
}

// Channel runs at least this long are stepped with one scalar threshold.
constexpr int64_t kMinScalarRun = 64;

// Whether a block's elements can be walked as runs that share one threshold
// pattern (ForEachThresholdRun): a layer-wise threshold, channel runs of at least
// kMinScalarRun elements, or an NCHWc layout of block 8 or 16. Otherwise a kernel
// steps with FillThreshold's per-element array.
inline bool HasThresholdRuns(const IFNeuronProblem& p) {
  return !p.per_channel || (p.channel_block == 1 && p.inner >= kMinScalarRun) || p.channel_block == 8 ||
         p.channel_block == 16;
}

// Calls f(i, length, values + g*b) for consecutive runs covering elements
// [begin, begin + n) of one step (i relative to begin), each inside one channel
// group g of b = p.channel_block channels (b = 1: one channel); `values` holds one
// value per channel. With b > 1 (NCHWc) i and length are multiples of b, and
// element i + j of a run belongs to channel g*b + j % b (PrepareIFNeuron checks
// that b divides kIFNeuronBlock, and blocks start at multiples of it).
template <typename F>
void ForEachChannelRun(const IFNeuronProblem& p, const float* values, int64_t begin, int64_t n, F&& f) {
  const int64_t b = p.channel_block;
  const int64_t run = p.inner * b;  // one channel group of one sample
  const int64_t groups = p.channels / b;
  int64_t r = begin % run, g = (begin / run) % groups;
  for (int64_t i = 0; i < n; r = 0, g = (g + 1 == groups) ? 0 : g + 1) {
    const int64_t length = run - r < n - i ? run - r : n - i;
    f(i, length, values + g * b);
    i += length;
  }
}

// For HasThresholdRuns(p): calls f(i, length, th, lanes) for runs covering
// [begin, begin + n) of one step; element i + j of a run has threshold th[0]
// (lanes == 1) or th[j % lanes] (lanes == b, NCHWc).
template <typename F>
void ForEachThresholdRun(const IFNeuronProblem& p, int64_t begin, int64_t n, F&& f) {
  if (!p.per_channel) {
    f(int64_t{0}, n, p.threshold, int64_t{1});
    return;
  }
  ForEachChannelRun(p, p.threshold, begin, n,
                    [&](int64_t i, int64_t length, const float* th) { f(i, length, th, p.channel_block); });
}

// Fill helpers shared with the other neuron kernels (BIFNeuron): th[i] / v[i] =
// threshold / initial potential of element begin+i of one step, for i < n.
void FillThreshold(const IFNeuronProblem& p, int64_t begin, int64_t n, float* th);
void FillVInit(const IFNeuronProblem& p, int64_t begin, int64_t n, float* v);

// The walk every neuron kernel makes over elements [begin, begin + n) (one block):
// for t = 0..T-1 in order, calls
//   f(lanes, x, x2, y, i, length, th)
// for pieces [i, i + length) of step t (i relative to begin), with x, x2, y
// pointing at element i of step t (x2 is nullptr unless kAdd: X2 given) and the
// threshold of element i + j being th[0] (lanes == 1), th[j % lanes] (lanes 8 or
// 16: NCHWc) or th[j] (lanes == 0: per element, from FillThreshold into
// th_scratch, which holds n floats). `lanes` is a std::integral_constant, so f can
// instantiate its step loop for it.
template <bool kAdd, typename F>
void ForEachStepRun(const IFNeuronProblem& p, int64_t begin, int64_t n, float* th_scratch, F&& f) {
  using Lanes0 = std::integral_constant<int64_t, 0>;
  using Lanes1 = std::integral_constant<int64_t, 1>;
  using Lanes8 = std::integral_constant<int64_t, 8>;
  using Lanes16 = std::integral_constant<int64_t, 16>;
  const bool runs = HasThresholdRuns(p);
  if (!runs) FillThreshold(p, begin, n, th_scratch);
  for (int64_t t = 0; t < p.timesteps; ++t) {
    const float* x = p.x + t * p.x_step + begin;
    const float* x2 = kAdd ? p.x2 + t * p.step_size + begin : nullptr;
    float* y = p.y + t * p.step_size + begin;
    if (!runs) {
      f(Lanes0{}, x, x2, y, int64_t{0}, n, static_cast<const float*>(th_scratch));
      continue;
    }
    ForEachThresholdRun(p, begin, n, [&](int64_t i, int64_t length, const float* th, int64_t lanes) {
      const float* x2i = kAdd ? x2 + i : nullptr;
      if (lanes == 16) {
        f(Lanes16{}, x + i, x2i, y + i, i, length, th);
      } else if (lanes == 8) {
        f(Lanes8{}, x + i, x2i, y + i, i, length, th);
      } else {
        f(Lanes1{}, x + i, x2i, y + i, i, length, th);
      }
    });
  }
}

// Runs block `block` (elements [block*kIFNeuronBlock, ...) of every step).
// Blocks are independent; never throws.
void IFNeuronRunBlock(const IFNeuronProblem& p, int64_t block) noexcept;

// Validates the inputs of one IFNeuron call (shapes of X, threshold, v_init),
// allocates Y and returns the problem, its pointers into the context's tensors
// (device pointers for a GPU kernel); step_size == 0 means nothing to compute.
// Throws std::invalid_argument with `where` and the reason.
// The session-internal layout attributes of a neuron op (see the top of this file).
struct NeuronLayout {
  int64_t channel_block = 1;
  bool repeat_input = false;
};

IFNeuronProblem PrepareIFNeuron(Ort::KernelContext& ctx, int64_t timesteps, ResetMode reset,
                                const std::string& where, const NeuronLayout& layout = {});

// Reads the optional int attributes channel_block (default 1, >= 1) and repeat_input
// (default 0, 0 or 1) into *layout; an OrtStatus naming `where` on error.
OrtStatusPtr ReadNeuronLayout(const OrtApi& api, const OrtKernelInfo* info, const std::string& where,
                              NeuronLayout* layout);

// The name of the node a kernel is created for ("" when the runtime gives none).
std::string KernelNodeName(const OrtApi& api, const OrtKernelInfo* info);

// Runs compute() (a kernel's throwing Compute) and turns what it throws into an
// OrtStatus whose message starts with `where` ("Op node 'name'"); nullptr on success.
template <typename F>
OrtStatusPtr ComputeToStatus(const std::string& where, F&& compute) noexcept {
  try {
    compute();
    return nullptr;
  } catch (const Ort::Exception& e) {
    return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(), (where + ": " + e.what()).c_str());
  } catch (const std::invalid_argument& e) {  // messages that already name the node
    return Ort::GetApi().CreateStatus(ORT_INVALID_ARGUMENT, e.what());
  } catch (const std::exception& e) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, (where + ": " + e.what()).c_str());
  }
}

// Reads and checks the attributes timesteps (int >= 1), reset ("subtract" |
// "zero") and the layout ones, and the node name; an OrtStatus naming the node on error.
OrtStatusPtr ParseIFNeuronAttributes(const OrtApi& api, const OrtKernelInfo* info, int64_t* timesteps,
                                     ResetMode* reset, NeuronLayout* layout, std::string* node_name);

// Kernel instance: one per node, holds the attributes.
struct IFNeuronKernel {
  IFNeuronKernel(int64_t timesteps, ResetMode reset, NeuronLayout layout, std::string node_name)
      : timesteps_(timesteps), reset_(reset), layout_(layout), node_name_(std::move(node_name)) {}

  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void Compute(OrtKernelContext* context) const;  // throws on error
  std::string Where() const;                      // "IFNeuron node 'name'"

  int64_t timesteps_;
  ResetMode reset_;
  NeuronLayout layout_;
  std::string node_name_;
};

// Schema + factory. WithStatus = true: errors return OrtStatus instead of
// letting C++ exceptions cross the C API boundary.
struct IFNeuronOp : Ort::CustomOpBase<IFNeuronOp, IFNeuronKernel, true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info,
                              void** op_kernel) const;

  const char* GetName() const { return "IFNeuron"; }

  size_t GetInputTypeCount() const { return 4; }  // X, threshold, v_init, X2
  ONNXTensorElementDataType GetInputType(size_t) const {
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index >= 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }

  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const {
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
};

}  // namespace onnx2snn
