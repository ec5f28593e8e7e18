#!/usr/bin/env python3
"""Train and export a stacked quantized IndRNN on sequential (S-MNIST) or permuted sequential MNIST.

Usage (from the repository root)::

    python models/make_smnist_qrnn.py --time-epoch                 # time one epoch, write nothing
    python models/make_smnist_qrnn.py --epochs 30 --minutes 90     # train, export models/smnist_qrnn.onnx
    python models/make_smnist_qrnn.py --permuted ...               # PS-MNIST, export models/psmnist_qrnn.onnx
    python models/make_smnist_qrnn.py [--permuted] --export-only   # export the saved checkpoint again
    python models/make_smnist_qrnn.py --init models/smnist_qrnn.onnx --minutes 60   # continue training the shipped model
    python models/make_smnist_qrnn.py --permuted --lam 100 --warmup-frac 1 ...     # a plain-ReLU float warm-up only
    python models/make_smnist_qrnn.py --permuted --resume out/psmnist_qrnn.last.pt --lam-at-switch mse ...
                                                                                   # go on from a saved checkpoint

The 784 pixels of an image (row by row, x = image/255; for ``--permuted`` in the fixed order
``np.random.RandomState(--perm-seed).permutation(784)``) are fed one at a time into a stack of
IndRNN layers (Li et al. 2018: a *diagonal* recurrent weight u, |u| ≤ 1) whose ReLU is
QCFS-quantized with L levels (Bu et al. 2022, learnt λ per layer)::

    layer k, element s:  h_s = Q(x_s·Wᵀ + u ⊙ h_{s−1} + b),    Q(z) = λ/L · clip(floor(z·L/λ + ½), 0, L)
    logits = V·h_784 (last layer) + c

The input of layer 1 is the pixel, the input of layer k > 1 the sequence of layer k−1's hidden
states. During training the input projection of every layer goes through a (sequence-wise)
BatchNorm, folded into W and b at export. Training: a float warm-up (Q replaced by clip(z, 0, λ))
for ``--warmup`` epochs, then quantization-aware training (straight-through gradient for the
floor), Adam with a cosine schedule, gradient-norm clipping. The recurrence of one layer (the
only sequential part: an element-wise loop) runs in a small C++ kernel with hand-written BPTT
(compiled once with torch.utils.cpp_extension; a pure-torch fallback with ``--no-cpp``); the
input projections of all 784 elements are one matrix product per layer.

Data: ``../shared/data/mnist70k.npz`` (60,000 train + 10,000 test). The last 5,000 training
digits are a validation split: the exported weights are those of the quantized epoch with the
best validation accuracy (the test digits are never used for selection, only printed at the end).

Export (onnx.helper from the trained weights, opset 13, IR 8): input ``image`` float32
[N, 784], output ``logits`` float32 [N, 10]; for ``--permuted`` a constant ``Gather`` (axis 1)
applies the permutation first; then ``Unsqueeze`` to [N, 784, 1] and one ``Scan`` per layer,
whose body is

    MatMul(x_s, Wᵀ) + Mul(h_prev, u) → Add(b) → Div(λ) → Clip(0, 1) → Mul(L) → Add(½) → Floor
      → Div(L) → Mul(λ)

(the chain onnx2snn recognises as a quantized activation), layer k's scan output feeding layer
k+1, and a ``Gemm`` readout of the last layer's h_784. torch is needed only by this script.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parent.parent
SEQ = 784
N_VAL = 5000

CPP = r"""
#include <torch/extension.h>
#include <cmath>
#include <vector>

// One IndRNN layer over the whole sequence. a: [S, N, H] (input projection incl. bias),
// u: [H], levels > 0: QCFS with that many levels, levels == 0: clip(z, 0, lam).
static void step_q(const float* __restrict__ As, const float* __restrict__ prev, const float* __restrict__ U,
                   float* __restrict__ Zs, float* __restrict__ Hn, int64_t N, int64_t H, float lam, float L) {
  const float inv = 1.f / lam, step = lam / L;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < H; ++k) {
      const int64_t i = n * H + k;
      const float zz = As[i] + prev[i] * U[k];
      Zs[i] = zz;
      Hn[i] = std::floor(std::fmin(std::fmax(zz * inv, 0.f), 1.f) * L + 0.5f) * step;
    }
}
static void step_f(const float* __restrict__ As, const float* __restrict__ prev, const float* __restrict__ U,
                   float* __restrict__ Zs, float* __restrict__ Hn, int64_t N, int64_t H, float lam) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < H; ++k) {
      const int64_t i = n * H + k;
      const float zz = As[i] + prev[i] * U[k];
      Zs[i] = zz;
      Hn[i] = std::fmin(std::fmax(zz, 0.f), lam);
    }
}

std::vector<torch::Tensor> indrnn_forward(torch::Tensor a, torch::Tensor u, double lam_d, int64_t levels) {
  const int64_t S = a.size(0), N = a.size(1), H = a.size(2), NH = N * H;
  auto h = torch::empty_like(a);
  auto z = torch::empty_like(a);
  const float* A = a.data_ptr<float>();
  const float* U = u.data_ptr<float>();
  float* Hs = h.data_ptr<float>();
  float* Z = z.data_ptr<float>();
  const float lam = (float)lam_d, L = (float)levels;
  std::vector<float> zero(NH, 0.f);
  const float* prev = zero.data();
  for (int64_t s = 0; s < S; ++s) {
    if (levels > 0) step_q(A + s * NH, prev, U, Z + s * NH, Hs + s * NH, N, H, lam, L);
    else step_f(A + s * NH, prev, U, Z + s * NH, Hs + s * NH, N, H, lam);
    prev = Hs + s * NH;
  }
  return {h, z};
}

// BPTT. gh_out: dLoss/dh_s from outside the recurrence [S, N, H]. Returns dLoss/da [S, N, H],
// dLoss/du [H], dLoss/dlam [1]. Straight-through: dQ/dz = [0 <= z <= lam],
// dQ/dlam = Q/lam - [0 <= z <= lam] z/lam (QCFS), or [z > lam] (clip).
static void back_step(const float* __restrict__ Gs, const float* __restrict__ Zs, const float* __restrict__ Hn,
                      const float* __restrict__ Hp, const float* __restrict__ U, float* __restrict__ GAs,
                      float* __restrict__ gh, float* __restrict__ gu_s, float* __restrict__ gl_s,
                      int64_t N, int64_t H, float lam, bool quant) {
  const float inv = 1.f / lam;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < H; ++k) {
      const int64_t i = n * H + k;
      const float g = gh[i] + Gs[i];
      const float zz = Zs[i];
      const float in = (zz >= 0.f && zz <= lam) ? 1.f : 0.f;
      const float gz = g * in;
      GAs[i] = gz;
      const float dl = quant ? (Hn[i] - in * zz) * inv : (zz > lam ? 1.f : 0.f);
      gl_s[k] += g * dl;
      gu_s[k] += gz * Hp[i];
      gh[i] = gz * U[k];
    }
}

std::vector<torch::Tensor> indrnn_backward(torch::Tensor gh_out, torch::Tensor h, torch::Tensor z,
                                           torch::Tensor u, double lam_d, int64_t levels) {
  const int64_t S = z.size(0), N = z.size(1), H = z.size(2), NH = N * H;
  auto ga = torch::empty_like(z);
  const float* G = gh_out.data_ptr<float>();
  const float* Hs = h.data_ptr<float>();
  const float* Z = z.data_ptr<float>();
  const float* U = u.data_ptr<float>();
  float* GA = ga.data_ptr<float>();
  const float lam = (float)lam_d;
  std::vector<float> gh(NH, 0.f), gu_s(H), gl_s(H), zero(NH, 0.f);
  std::vector<double> gu(H, 0.0), gl(H, 0.0);
  for (int64_t s = S - 1; s >= 0; --s) {
    std::fill(gu_s.begin(), gu_s.end(), 0.f);
    std::fill(gl_s.begin(), gl_s.end(), 0.f);
    back_step(G + s * NH, Z + s * NH, Hs + s * NH, s > 0 ? Hs + (s - 1) * NH : zero.data(), U, GA + s * NH,
              gh.data(), gu_s.data(), gl_s.data(), N, H, lam, levels > 0);
    for (int64_t k = 0; k < H; ++k) { gu[k] += gu_s[k]; gl[k] += gl_s[k]; }
  }
  auto gu_t = torch::empty({H}, z.options());
  float* GU = gu_t.data_ptr<float>();
  double gl_tot = 0.0;
  for (int64_t k = 0; k < H; ++k) { GU[k] = (float)gu[k]; gl_tot += gl[k]; }
  auto gl_t = torch::full({1}, (float)gl_tot, z.options());
  return {ga, gu_t, gl_t};
}
"""
_ext = None


def cpp_ext():
    global _ext
    if _ext is None:
        from torch.utils.cpp_extension import load_inline
        _ext = load_inline("indrnn_qcfs", cpp_sources=CPP, functions=["indrnn_forward", "indrnn_backward"],
                           extra_cflags=["-O3", "-march=native"], verbose=False)
    return _ext


def _torch_forward(a, u, lam, levels):
    hs, zs = torch.empty_like(a), torch.empty_like(a)
    h = a.new_zeros(a.shape[1:])
    for s in range(a.shape[0]):
        zs[s] = a[s] + h * u
        h = hs[s] = qcfs(zs[s], lam, levels) if levels else torch.clamp(zs[s], min=0).clamp(max=lam)
    return hs, zs


def _torch_backward(gh_out, hs, zs, u, lam, levels):
    ga = torch.empty_like(zs)
    gh = torch.zeros_like(zs[0])
    gu = torch.zeros_like(u)
    gl = zs.new_zeros(())
    for s in range(zs.shape[0] - 1, -1, -1):
        g = gh + gh_out[s]
        inside = (zs[s] >= 0) & (zs[s] <= lam)
        gz = g * inside
        ga[s] = gz
        dl = hs[s] / lam - torch.where(inside, zs[s] / lam, torch.zeros_like(zs[s])) if levels else \
            (zs[s] > lam).float()
        gl = gl + (g * dl).sum()
        if s > 0:
            gu = gu + (gz * hs[s - 1]).sum(0)
        gh = gz * u
    return ga, gu, gl.reshape(1)


class IndRNNFunction(torch.autograd.Function):
    """h_s = Q(a_s + u ⊙ h_{s−1}) over the whole sequence, one autograd node (hand-written BPTT)."""

    @staticmethod
    def forward(ctx, a, u, lam, levels: int, use_cpp: bool):
        a = a.contiguous()
        lam_f = float(lam)
        if use_cpp:
            hs, zs = cpp_ext().indrnn_forward(a, u.detach().contiguous(), lam_f, levels)
        else:
            hs, zs = _torch_forward(a, u.detach(), lam_f, levels)
        ctx.save_for_backward(hs, zs, u)
        ctx.lam, ctx.levels, ctx.use_cpp = lam_f, levels, use_cpp
        return hs

    @staticmethod
    def backward(ctx, gh_out):
        hs, zs, u = ctx.saved_tensors
        fn = cpp_ext().indrnn_backward if ctx.use_cpp else _torch_backward
        ga, gu, gl = fn(gh_out.contiguous(), hs, zs, u.detach().contiguous(), ctx.lam, ctx.levels)
        return ga, gu, gl.reshape(()), None, None


def qcfs(z: torch.Tensor, lam, levels: int) -> torch.Tensor:
    """λ/L · clip(floor(z/λ·L + ½), 0, L) with the ONNX chain's float32 ops in its order."""
    return torch.floor(torch.clamp(z / lam, 0, 1) * levels + 0.5) / levels * lam


class Layer(nn.Module):
    def __init__(self, features: int, hidden: int, u_range: tuple[float, float], lam: float) -> None:
        super().__init__()
        self.w = nn.Linear(features, hidden)
        nn.init.kaiming_uniform_(self.w.weight, a=math.sqrt(5))
        self.bn = nn.BatchNorm1d(hidden, momentum=0.05)
        self.u = nn.Parameter(torch.empty(hidden).uniform_(*u_range))
        self.lam = nn.Parameter(torch.tensor(float(lam)))

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W and b with the BatchNorm (running statistics) folded in: a = x·Wᵀ + b."""
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return self.w.weight * scale[:, None], (self.w.bias - bn.running_mean) * scale + bn.bias

    def forward(self, x: torch.Tensor, levels: int, use_cpp: bool) -> torch.Tensor:
        """x [S, N, F] → hidden states [S, N, H]."""
        S, N, _ = x.shape
        a = self.w(x.reshape(S * N, -1))
        a = self.bn(a).reshape(S, N, -1)
        return IndRNNFunction.apply(a, self.u, self.lam, levels, use_cpp)


class QIndRNN(nn.Module):
    def __init__(self, layers: int, hidden: int, levels: int, lam: float, readout: str = "last",
                 features: int = 1, classes: int = 10, seq: int = SEQ) -> None:
        super().__init__()
        self.levels = levels
        self.readout = readout
        # IndRNN initialisation: u ∈ [0, 1] in the lower layers; in the last, close to 1 (long
        # memory) when only its h_784 is read out
        self.layers = nn.ModuleList(Layer(features if k == 0 else hidden, hidden,
                                          (2 ** (-10 / seq), 1.0) if k == layers - 1 and readout == "last"
                                          else (0.0, 1.0), lam)
                                    for k in range(layers))
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor, quantized: bool = True, use_cpp: bool = True) -> torch.Tensor:
        """x [N, 784] (already permuted) or [N, S, F] → logits [N, classes]."""
        h = (x.t().unsqueeze(2) if x.dim() == 2 else x.transpose(0, 1)).contiguous()
        for layer in self.layers:
            h = layer(h, self.levels if quantized else 0, use_cpp)
        return self.fc(h.mean(0) if self.readout == "mean" else h[-1])

    @torch.no_grad()
    def constrain(self) -> None:
        for layer in self.layers:
            layer.u.clamp_(-1.0, 1.0)
            layer.lam.clamp_(min=1e-2)


@torch.no_grad()
def lam_from_data(model: QIndRNN, x: torch.Tensor, how: str, use_cpp: bool) -> None:
    """λ of each layer, in order, from its hidden states on ``x`` with the layers below already
    quantized: ``how`` = a percentile P of the positive float states, or ``mse``: the λ of 100
    candidates (max·k/100) whose quantized recurrence is closest to the float one (squared error)."""
    was = [layer.bn.training for layer in model.layers]
    for layer in model.layers:
        layer.bn.eval()
    h = x.t().unsqueeze(2).contiguous()
    lams = []
    for layer in model.layers:
        target = layer(h, 0, use_cpp)
        top = float(target.max())
        if top <= 0:
            lam = float(layer.lam)
        elif how == "mse":
            errs = {}
            for k in range(1, 101):
                layer.lam.fill_(top * k / 100)
                errs[top * k / 100] = float(((layer(h, model.levels, use_cpp) - target) ** 2).mean())
            lam = min(errs, key=errs.get)
        else:
            lam = float(np.percentile(target[target > 0].numpy(), float(how)))
        layer.lam.fill_(max(lam, 1e-2))
        lams.append(lam)
        h = layer(h, model.levels, use_cpp)   # the next layer sees this one quantized
    for layer, t in zip(model.layers, was):
        layer.bn.train(t)
    print(f"  λ from the hidden states ({how}): {', '.join(f'{v:.3f}' for v in lams)}", flush=True)


@torch.no_grad()
def accuracy(model, x, y, quantized, use_cpp, bs=1000) -> float:
    model.eval()
    return sum(int((model(x[i:i + bs], quantized, use_cpp).argmax(1) == y[i:i + bs]).sum())
               for i in range(0, len(x), bs)) / len(x)


def export_onnx(model: QIndRNN, path: Path, perm: np.ndarray | None, doc: str, float_cell: bool = False,
                input_name: str = "image", sequence: tuple[int, int] | None = None) -> onnx.ModelProto:
    """The trained model as Scans (one per layer, cell = quantized activation chain) + Gemm readout.

    ``float_cell``: the float ANN of the warm-up instead, Clip(z, 0, λ) in place of the quantizer
    (for comparison only; it has no exact SNN). Input ``image`` [N, 784], one pixel per element,
    or, with ``sequence`` = (S, F), ``input_name`` [N, S, F]."""
    f32 = np.float32
    L = model.levels
    nodes, inits = [], {"seq_axes": np.array([2], np.int64), "batch_index": np.array([0], np.int64)}
    src = input_name
    if perm is not None:
        inits["permutation"] = perm.astype(np.int64)
        nodes.append(oh.make_node("Gather", [src, "permutation"], [src + "_permuted"], name="permute", axis=1))
        src = src + "_permuted"
    if sequence is None:
        nodes.append(oh.make_node("Unsqueeze", [src, "seq_axes"], ["pixels"], name="pixels_as_sequence"))
        seq = "pixels"
    else:
        del inits["seq_axes"]
        seq = src
    nodes += [oh.make_node("Shape", [input_name], ["input_shape"], name="h0/shape"),
              oh.make_node("Gather", ["input_shape", "batch_index"], ["batch"], name="h0/batch", axis=0)]
    axis = 1
    n_layers = len(model.layers)
    for k, layer in enumerate(model.layers):
        p = f"l{k + 1}_"
        last = k == n_layers - 1
        w, b = (t.detach().numpy().astype(f32) for t in layer.folded())
        H, features = w.shape
        consts = {"W_t": w.T.copy(), "u": layer.u.detach().numpy().astype(f32), "b": b,
                  "lambda": np.asarray(layer.lam.item(), f32), "zero": np.asarray(0, f32),
                  "one": np.asarray(1, f32), "levels": np.asarray(L, f32), "half": np.asarray(0.5, f32)}
        body_nodes = [
            oh.make_node("MatMul", [p + "x_s", p + "W_t"], [p + "xw"], name=p + "input_weights"),
            oh.make_node("Mul", [p + "h_prev", p + "u"], [p + "hu"], name=p + "recurrent_weights"),
            oh.make_node("Add", [p + "xw", p + "hu"], [p + "xw_hu"], name=p + "sum"),
            oh.make_node("Add", [p + "xw_hu", p + "b"], [p + "pre"], name=p + "bias")]
        if float_cell:
            body_nodes.append(oh.make_node("Clip", [p + "pre", p + "zero", p + "lambda"], [p + "h_next"],
                                           name=p + "clipped_relu"))
        else:
            body_nodes += [
                oh.make_node("Div", [p + "pre", p + "lambda"], [p + "q1"], name=p + "qcfs/div_lambda"),
                oh.make_node("Clip", [p + "q1", p + "zero", p + "one"], [p + "q2"], name=p + "qcfs/clip"),
                oh.make_node("Mul", [p + "q2", p + "levels"], [p + "q3"], name=p + "qcfs/mul_levels"),
                oh.make_node("Add", [p + "q3", p + "half"], [p + "q4"], name=p + "qcfs/add_half"),
                oh.make_node("Floor", [p + "q4"], [p + "q5"], name=p + "qcfs/floor"),
                oh.make_node("Div", [p + "q5", p + "levels"], [p + "q6"], name=p + "qcfs/div_levels"),
                oh.make_node("Mul", [p + "q6", p + "lambda"], [p + "h_next"], name=p + "qcfs/mul_lambda")]
        outputs = [oh.make_tensor_value_info(p + "h_next", onnx.TensorProto.FLOAT, ["N", H])]
        if not last or model.readout == "mean":
            body_nodes.append(oh.make_node("Identity", [p + "h_next"], [p + "h_seq"], name=p + "copy"))
            outputs.append(oh.make_tensor_value_info(p + "h_seq", onnx.TensorProto.FLOAT, ["N", H]))
        body = oh.make_graph(
            body_nodes, p + "quantized_indrnn_cell",
            [oh.make_tensor_value_info(p + "h_prev", onnx.TensorProto.FLOAT, ["N", H]),
             oh.make_tensor_value_info(p + "x_s", onnx.TensorProto.FLOAT, ["N", features])],
            outputs, [onnx.numpy_helper.from_array(v, p + n) for n, v in consts.items()])
        inits[p + "hidden_size"] = np.array([H], np.int64)
        nodes += [oh.make_node("Concat", ["batch", p + "hidden_size"], [p + "h0_shape"], name=p + "h0/shape", axis=0),
                  oh.make_node("ConstantOfShape", [p + "h0_shape"], [p + "h0"], name=p + "h0/zeros",
                               value=onnx.numpy_helper.from_array(np.zeros(1, f32), "zero"))]
        outs = [p + "h_last"] + ([] if last and model.readout == "last" else [p + "states"])
        nodes.append(oh.make_node("Scan", [p + "h0", seq], outs, name=f"layer{k + 1}", body=body,
                                  num_scan_inputs=1, scan_input_axes=[axis]))
        seq, axis = p + "states", 0
    inits["V_t"] = model.fc.weight.detach().numpy().astype(f32).T.copy()
    inits["c"] = model.fc.bias.detach().numpy().astype(f32)
    features = f"l{n_layers}_h_last"
    if model.readout == "mean":  # the mean over the 784 elements of the last layer's hidden states
        nodes.append(oh.make_node("ReduceMean", [f"l{n_layers}_states"], ["h_mean"], name="mean_over_elements",
                                  axes=[0], keepdims=0))
        features = "h_mean"
    nodes.append(oh.make_node("Gemm", [features, "V_t", "c"], ["logits"], name="readout"))
    classes = model.fc.out_features
    graph = oh.make_graph(nodes, path.stem,
                          [oh.make_tensor_value_info(input_name, onnx.TensorProto.FLOAT,
                                                     ["N", SEQ] if sequence is None else ["N", *sequence])],
                          [oh.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", classes])],
                          [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)],
                      producer_name=f"onnx2snn models/{Path(sys.argv[0]).name}")
    m.ir_version = 8
    m.doc_string = doc
    onnx.checker.check_model(m, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(path))
    return m


def load_onnx_weights(model: QIndRNN, path: Path, perm: np.ndarray | None) -> None:
    """Set ``model`` to the weights of a model this script exported (``--init``): the same function.
    A file that is not such a model, or one for another task, readout or size, is one SystemExit
    naming every mismatch.

    The exported W and b have the BatchNorm folded in, so each BatchNorm becomes the identity
    (running mean 0, variance 1, weight √(1 + eps), bias 0) and is meant to stay frozen."""
    if not path.is_file():
        raise SystemExit(f"--init {path}: no such file")
    m = onnx.load(str(path))
    top = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    scans = [n for n in m.graph.node if n.op_type == "Scan"]
    bodies = [{t.name: onnx.numpy_helper.to_array(t) for t in scan.attribute[0].g.initializer} for scan in scans]
    problems = []
    if len(scans) != len(model.layers):
        problems.append(f"{len(scans)} Scan(s) for this model's {len(model.layers)} layers (--layers)")
    if "V_t" not in top or "c" not in top:
        problems.append("no readout Gemm weights V_t, c")
    readout = "mean" if any(n.op_type == "ReduceMean" for n in m.graph.node) else "last"
    if readout != model.readout:
        problems.append(f"readout {readout}, not --readout {model.readout}")
    saved = top.get("permutation")
    if (saved is None) != (perm is None) or (saved is not None and not np.array_equal(saved, perm)):
        problems.append("a permuted (PS-MNIST) model without --permuted" if perm is None else
                        "no permutation (an S-MNIST model)" if saved is None else
                        "another pixel permutation than --perm-seed's")
    for k, (layer, body) in enumerate(zip(model.layers, bodies)):
        w_t = body.get(f"l{k + 1}_W_t")
        if w_t is None or any(f"l{k + 1}_{n}" not in body for n in ("b", "u", "lambda")):
            problems.append(f"layer {k + 1}'s Scan has no l{k + 1}_W_t, _b, _u, _lambda")
        elif tuple(w_t.shape) != tuple(layer.w.weight.shape[::-1]):
            problems.append(f"layer {k + 1} has W of shape {w_t.shape[::-1]}, this model "
                            f"{tuple(layer.w.weight.shape)} (--hidden)")
    if problems:
        raise SystemExit(f"--init {path} is not a model this script exported for these flags: "
                         + "; ".join(problems))
    with torch.no_grad():
        for k, (layer, body) in enumerate(zip(model.layers, bodies)):
            p = f"l{k + 1}_"
            layer.w.weight.copy_(torch.from_numpy(body[p + "W_t"].T.copy()))
            layer.w.bias.copy_(torch.from_numpy(body[p + "b"]))
            layer.u.copy_(torch.from_numpy(body[p + "u"]))
            layer.lam.fill_(float(body[p + "lambda"]))
            bn = layer.bn
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.fill_(math.sqrt(1.0 + bn.eps))
            bn.bias.zero_()
        model.fc.weight.copy_(torch.from_numpy(top["V_t"].T.copy()))
        model.fc.bias.copy_(torch.from_numpy(top["c"]))


def onnx_logits(path: Path, x: np.ndarray, bs: int = 500, name: str = "image") -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {name: x[i:i + bs]})[0] for i in range(0, len(x), bs)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--permuted", action="store_true", help="permuted sequential MNIST (PS-MNIST)")
    ap.add_argument("--perm-seed", type=int, default=0, help="seed of the fixed pixel permutation")
    ap.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "mnist70k.npz")
    ap.add_argument("--out", type=Path, default=None, help="default models/{smnist,psmnist}_qrnn.onnx")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default out/{smnist,psmnist}_qrnn.pt")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--readout", default="mean", choices=["last", "mean"],
                    help="read out the last layer's h_784 or its mean over the 784 elements")
    ap.add_argument("--levels", type=int, default=16, help="quantization levels L (a power of two)")
    ap.add_argument("--lam", type=float, default=4.0, help="initial λ")
    ap.add_argument("--epochs", type=int, default=1000, help="at most this many epochs")
    def lam_rule(text: str) -> str:
        """``mse`` or a percentile in (0, 100]."""
        try:
            ok = text == "mse" or 0 < float(text) <= 100
        except ValueError:
            ok = False
        if not ok:
            raise argparse.ArgumentTypeError(f"'{text}' is neither mse nor a percentile in (0, 100]")
        return text

    ap.add_argument("--lam-at-switch", type=lam_rule, default=None, metavar="P|mse",
                    help="when quantization starts, set each layer's λ (in order, the layers below quantized) "
                         "from its hidden states on 8 training batches: the P-th percentile of the positive "
                         "float states, or mse: the λ whose quantized recurrence is closest to the float one "
                         "(for a float warm-up with a large --lam, i.e. a plain ReLU: the clip at a small λ "
                         "stalls PS-MNIST's float warm-up)")
    ap.add_argument("--warmup-frac", type=float, default=0.3,
                    help="float warm-up: the batches before this fraction of the time budget")
    ap.add_argument("--bn-freeze-frac", type=float, default=0.1,
                    help="from this fraction of the budget on, the BatchNorms use (and keep) their running "
                         "statistics: a recurrence integrates the small difference between batch and running "
                         "statistics over 784 elements, so the model must train with the ones it is exported with")
    ap.add_argument("--minutes", type=float, default=90.0, help="training time budget")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping")
    ap.add_argument("--train-limit", type=int, default=None, help="use only the first N training digits")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-cpp", action="store_true", help="pure-torch recurrence (slow)")
    ap.add_argument("--time-epoch", action="store_true", help="time a few batches and exit")
    ap.add_argument("--export-only", action="store_true", help="export --checkpoint, no training")
    ap.add_argument("--init", type=Path, default=None,
                    help="continue training from a model this script exported (e.g. the shipped one): "
                         "quantized and with frozen BatchNorm from the first batch")
    ap.add_argument("--resume", type=Path, default=None,
                    help="start from the weights (and BatchNorm statistics) of a checkpoint this script saved "
                         "(e.g. out/psmnist_qrnn.last.pt); the schedule given here runs from its start")
    args = ap.parse_args()
    if args.resume and (args.init or args.export_only):
        ap.error("--resume starts from a checkpoint: not with --init or --export-only")
    if args.init and args.export_only:
        ap.error("--init trains from a model; --export-only exports --checkpoint without training: give one")
    name = "psmnist_qrnn" if args.permuted else "smnist_qrnn"
    out = args.out or REPO_ROOT / "models" / f"{name}.onnx"
    ckpt = args.checkpoint or REPO_ROOT / "out" / f"{name}.pt"
    use_cpp = not args.no_cpp

    try:  # keep the large per-batch buffers in the heap (no fresh, page-faulting mmap per batch)
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)           # M_TRIM_THRESHOLD
    except OSError:
        pass
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    perm = np.random.RandomState(args.perm_seed).permutation(SEQ) if args.permuted else None
    d = np.load(args.data)
    x_train = d["train_images"].reshape(-1, SEQ).astype(np.float32) / 255.0
    x_test = d["test_images"].reshape(-1, SEQ).astype(np.float32) / 255.0
    order = perm if perm is not None else np.arange(SEQ)
    xt = torch.from_numpy(x_train[:, order].copy())
    yt = torch.from_numpy(d["train_labels"].astype(np.int64))
    x_tr, y_tr, x_va, y_va = xt[:-N_VAL], yt[:-N_VAL], xt[-N_VAL:], yt[-N_VAL:]
    if args.train_limit:
        x_tr, y_tr = x_tr[:args.train_limit], y_tr[:args.train_limit]
    n_tr = len(x_tr)

    model = QIndRNN(args.layers, args.hidden, args.levels, args.lam, args.readout)
    info = {}
    if args.export_only:
        saved = torch.load(ckpt)
        model.load_state_dict(saved["model"])
        info = saved["info"]
    else:
        init_val = None
        if args.resume:
            if not args.resume.is_file():
                raise SystemExit(f"--resume {args.resume}: no such file")
            model.load_state_dict(torch.load(args.resume)["model"])
            print(f"resumed from {args.resume}: validation accuracy (float) "
                  f"{accuracy(model, x_va, y_va, False, use_cpp):.4f}", flush=True)
        if args.init:
            load_onnx_weights(model, args.init, perm)
            args.warmup_frac = args.bn_freeze_frac = 0.0
            init_val = accuracy(model, x_va, y_va, True, use_cpp)
            print(f"initialised from {args.init}: validation accuracy {init_val:.4f}", flush=True)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        steps_per_epoch = math.ceil(n_tr / args.batch_size)
        budget = 60 * args.minutes
        # the schedule follows the time budget, not an epoch count: cosine learning rate over the
        # budget (after 200 batches of linear warm-up), quantization from the first epoch that starts
        # after --warmup-frac of it, stop when it is spent (or after --epochs)
        gen = torch.Generator().manual_seed(args.seed)
        t0 = time.perf_counter()
        best, quantized, done, n_batches = -1.0, False, False, 0
        if init_val is not None:  # an epoch must beat the model it started from to replace it
            best = init_val
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "info": {"epoch": 0, "val": init_val, "quantized": True,
                                                               "elapsed_s": 0.0, "init": str(args.init)}}, ckpt)
        frozen = False
        for epoch in range(args.epochs):
            model.train()
            perm_b = torch.randperm(n_tr, generator=gen)
            total, correct, seen = 0.0, 0, 0
            for j, i in enumerate(range(0, n_tr, args.batch_size)):
                progress = (time.perf_counter() - t0) / budget
                if progress >= 1:
                    done = True
                    break
                if not frozen and progress >= args.bn_freeze_frac:
                    frozen = True
                    print(f"  BatchNorm statistics frozen (batch {n_batches})", flush=True)
                if not quantized and progress >= args.warmup_frac:
                    quantized = True
                    if args.lam_at_switch is not None:
                        lam_from_data(model, x_tr[perm_b[:8 * args.batch_size]], args.lam_at_switch, use_cpp)
                    print(f"  quantization-aware training from batch {n_batches} on", flush=True)
                if frozen:  # the running statistics normalise, as in the exported model
                    for layer in model.layers:
                        layer.bn.eval()
                for group in opt.param_groups:
                    group["lr"] = args.lr * min(1.0, (n_batches + 1) / 200) * 0.5 * (1 + math.cos(math.pi * progress))
                idx = perm_b[i:i + args.batch_size]
                logits = model(x_tr[idx], quantized, use_cpp)
                loss = F.cross_entropy(logits, y_tr[idx])
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
                opt.step()
                model.constrain()
                n_batches += 1
                total += loss.item() * len(idx)
                correct += int((logits.argmax(1) == y_tr[idx]).sum())
                seen += len(idx)
                if args.time_epoch and j == 10:
                    per = (time.perf_counter() - t1) / 10
                    print(f"{per:.3f} s per batch of {args.batch_size} -> about {per * steps_per_epoch:.0f} s per "
                          f"epoch of {n_tr} digits (loss {total / seen:.4f})", flush=True)
                    return
                if j == 0:
                    t1 = time.perf_counter()
                if j % 100 == 0:
                    print(f"  epoch {epoch + 1} batch {j}/{steps_per_epoch}: loss {total / seen:.4f}, "
                          f"train acc {correct / seen:.4f}, lr {opt.param_groups[0]['lr']:.2e} "
                          f"({time.perf_counter() - t0:.0f} s)", flush=True)
            if seen == 0:
                break
            val = accuracy(model, x_va, y_va, quantized, use_cpp)
            elapsed = time.perf_counter() - t0
            print(f"epoch {epoch + 1} ({'quantized' if quantized else 'float'}, {seen} digits): loss "
                  f"{total / seen:.4f}, train acc {correct / seen:.4f}, val acc {val:.4f}, λ "
                  f"{', '.join(f'{layer.lam.item():.3f}' for layer in model.layers)} ({elapsed:.0f} s)", flush=True)
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            state = {"model": model.state_dict(), "info": {"epoch": epoch + 1, "val": val, "quantized": quantized,
                                                           "elapsed_s": elapsed}}
            torch.save(state, ckpt.with_suffix(".last.pt"))
            if not quantized:
                torch.save(state, ckpt.with_suffix(".float.pt"))
            if quantized and val > best:
                best = val
                torch.save(state, ckpt)
                print(f"  saved (best quantized val acc so far) -> {ckpt}", flush=True)
            if done:
                break
        train_s = time.perf_counter() - t0
        print(f"train time: {train_s:.0f} s, {epoch + 1} epochs, {args.threads} thread(s)", flush=True)
        if not ckpt.exists():  # no quantized epoch ended within the budget (a tiny test run): the last one
            torch.save(torch.load(ckpt.with_suffix(".last.pt")), ckpt)
        saved = torch.load(ckpt)
        model.load_state_dict(saved["model"])
        info = {**saved["info"], "train_s": train_s, "epochs_run": epoch + 1, "batches": n_batches}

    task = "permuted sequential MNIST (PS-MNIST)" if args.permuted else "sequential MNIST (S-MNIST)"
    doc = (f"Quantized IndRNN ({args.layers} layers × {args.hidden}, QCFS L={args.levels}) on {task}: "
           f"image [N, 784] = pixels/255 row by row" +
           (f", permuted inside the graph (np.random.RandomState({args.perm_seed}).permutation(784))" if args.permuted
            else "") + ", one pixel per element; logits [N, 10].")
    m = export_onnx(model, out, perm, doc)
    print(f"exported {out} (IR {m.ir_version}, opset 13, {out.stat().st_size / 1024:.1f} KiB), selected epoch "
          f"{info.get('epoch')} (val acc {info.get('val', float('nan')):.4f})")
    y_test = d["test_labels"].astype(np.int64)
    got = onnx_logits(out, x_test)
    with torch.no_grad():
        model.eval()
        ref = torch.cat([model(torch.from_numpy(x_test[i:i + 1000, order].copy()), True, use_cpp)
                         for i in range(0, len(x_test), 1000)]).numpy()
    print(f"onnxruntime vs torch on 10,000 test digits: same prediction {int((got.argmax(1) == ref.argmax(1)).sum())}"
          f"/10000, max |logit diff| {np.abs(got - ref).max():.2e}")
    acc = float((got.argmax(1) == y_test).mean())
    print(f"ONNX quantized RNN test accuracy (10,000 digits): {100 * acc:.2f}%")
    float_ckpt = ckpt.with_suffix(".float.pt")
    if float_ckpt.exists():  # the float ANN of the last warm-up epoch, for comparison (out/, not shipped)
        fm = QIndRNN(args.layers, args.hidden, args.levels, args.lam, args.readout)
        fm.load_state_dict(torch.load(float_ckpt)["model"])
        float_path = ckpt.parent / f"{name}_float.onnx"
        export_onnx(fm, float_path, perm, doc.replace("Quantized IndRNN", "Float IndRNN (warm-up, clip(z, 0, λ))"),
                    float_cell=True)
        info["float_test_acc_onnx"] = float((onnx_logits(float_path, x_test).argmax(1) == y_test).mean())
        print(f"float warm-up ANN ({float_path}) test accuracy: {100 * info['float_test_acc_onnx']:.2f}%")
    summary = ckpt.with_suffix(".json")  # kept across --export-only (the training run's time stays)
    prev = json.loads(summary.read_text()) if summary.exists() else {}
    summary.write_text(json.dumps({**prev, **info, "test_acc_onnx": acc}, indent=1))


if __name__ == "__main__":
    main()
