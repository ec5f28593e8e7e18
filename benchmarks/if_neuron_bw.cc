// IFNeuron CPU block kernel against plain copies of the same bytes, without onnxruntime.
//
//   g++ -O3 -std=c++17 -ffp-contract=off -fno-trapping-math -DORT_API_MANUAL_INIT
//       -Icustom_ops/src -Icustom_ops/third_party/onnxruntime/include
//       benchmarks/if_neuron_bw.cc custom_ops/src/cpu/if_neuron.cc custom_ops/src/cpu/neuron_blocks.cc
//       custom_ops/src/common/neuron_inputs.cc custom_ops/src/common/attributes.cc
//       custom_ops/src/common/isa.cc -o /tmp/if_neuron_bw -lpthread
//   (one line; the flags of custom_ops/CMakeLists.txt)
//   /tmp/if_neuron_bw [MB=256] [T=16] [threads=2]
//
// Threads take blocks round-robin (as the session's ParallelFor would). Each row: GB/s =
// (bytes read + written) / wall time, best of 5, and the same per second of process CPU
// time (on a shared machine wall time mostly measures scheduling). Variants (bit-exact to
// the library kernel, checked): a layer-wise theta in a register, with smaller blocks.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "cpu/if_neuron.h"
#include "cpu/neuron_blocks.h"

using namespace onnx2snn;

template <int64_t B>
void ScalarThetaBlock(const IFNeuronProblem& p, int64_t block) {
  alignas(64) static thread_local float v[B];
  const int64_t begin = block * B;
  const int64_t n = std::min(B, p.step_size - begin);
  const float th = p.threshold[0];
  std::fill(v, v + n, 0.0f);
  for (int64_t t = 0; t < p.timesteps; ++t) {
    const float* __restrict x = p.x + t * p.step_size + begin;
    float* __restrict y = p.y + t * p.step_size + begin;
    for (int64_t i = 0; i < n; ++i) {
      const float vi = v[i] + x[i];
      const bool s = vi >= th;
      y[i] = s ? th : 0.0f;
      v[i] = s ? vi - th : vi;
    }
  }
}

static double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

struct Timing { double wall, cpu; };

static Timing Best(int threads, int64_t tasks, const std::function<void(int64_t)>& f) {
  Timing best{1e30, 1e30};
  for (int r = 0; r < 6; ++r) {
    const double c0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int k = 0; k < threads; ++k)
      pool.emplace_back([&, k] { for (int64_t b = k; b < tasks; b += threads) f(b); });
    for (auto& th : pool) th.join();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = CpuSeconds() - c0;
    if (r > 0) best = {std::min(best.wall, wall), std::min(best.cpu, cpu)};  // r == 0 warms up
  }
  return best;
}

int main(int argc, char** argv) {
  const int64_t mb = argc > 1 ? atoll(argv[1]) : 256;
  const int64_t T = argc > 2 ? atoll(argv[2]) : 16;
  const int threads = argc > 3 ? atoi(argv[3]) : 2;
  const int64_t total = mb * (int64_t{1} << 20) / 4 / T * T;
  const int64_t M = total / T;
  const size_t bytes = static_cast<size_t>(total) * 4;
  float* x = static_cast<float*>(aligned_alloc(64, bytes));
  float* ref = static_cast<float*>(aligned_alloc(64, bytes));
  float* y = static_cast<float*>(aligned_alloc(64, bytes));
  srand(1);
  for (int64_t i = 0; i < total; ++i) x[i] = (rand() % 1000) / 500.0f - 0.5f;
  memset(ref, 0, bytes);
  memset(y, 0, bytes);
  const float theta = 0.75f;
  IFNeuronProblem p;
  p.x = x; p.y = ref; p.timesteps = T; p.step_size = M; p.x_step = M; p.threshold = &theta;
  IFNeuronProblem q = p;
  q.y = y;
  const int64_t chunks = 256;
  const int64_t csz = (total + chunks - 1) / chunks;
  printf("X %lld MB, T=%lld, %d threads; GB/s = 2 x %lld MB / time\n", (long long)mb, (long long)T, threads,
         (long long)mb);
  printf("| what | GB/s (wall) | GB/s per CPU-second | bit-exact to kernel |\n|---|---|---|---|\n");
  auto row = [&](const char* name, Timing t, const char* exact) {
    printf("| %s | %.2f | %.2f | %s |\n", name, 2.0 * bytes / t.wall / 1e9, 2.0 * bytes / t.cpu / 1e9, exact);
  };
  row("memcpy", Best(threads, chunks, [&](int64_t c) {
        const int64_t b = c * csz, n = std::min(csz, total - b);
        if (n > 0) memcpy(y + b, x + b, n * 4);
      }), "");
  row("copy loop", Best(threads, chunks, [&](int64_t c) {
        const int64_t b = c * csz, e = std::min(b + csz, total);
        float* __restrict yy = y;
        const float* __restrict xx = x;
        for (int64_t i = b; i < e; ++i) yy[i] = xx[i];
      }), "");
  row(("IFNeuron kernel (block " + std::to_string(kIFNeuronBlock) + ", theta per channel run)").c_str(),
      Best(threads, IFNeuronBlockCount(p), [&](int64_t b) { IFNeuronRunBlock(p, b); }), "");
  auto variant = [&](const char* name, int64_t block, void (*fn)(const IFNeuronProblem&, int64_t)) {
    memset(y, 0, bytes);
    const Timing t = Best(threads, (M + block - 1) / block, [&](int64_t b) { fn(q, b); });
    row(name, t, memcmp(ref, y, bytes) == 0 ? "yes" : "NO");
  };
  variant("scalar theta, block 1024", 1024, ScalarThetaBlock<1024>);
  variant("scalar theta, block 4096", 4096, ScalarThetaBlock<4096>);
  variant("scalar theta, block 16384", 16384, ScalarThetaBlock<16384>);
  return 0;
}
