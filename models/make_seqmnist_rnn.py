#!/usr/bin/env python3
"""Train and export a quantized ReLU RNN on sequential (pixel-by-pixel) MNIST.

Usage (from the repository root)::

    python models/make_seqmnist_rnn.py --time-epoch        # time one epoch, write nothing
    python models/make_seqmnist_rnn.py --minutes 25        # train, export models/seqmnist_qrnn.onnx
    python models/make_seqmnist_rnn.py --export-only       # export the saved checkpoint again

The 784 pixels of an image (row by row, x = image/255) are fed one at a time
into a recurrent cell with a QCFS-quantized ReLU (Bu et al. 2022, learnt λ)::

    h_s = Q(W·x_s + U·h_{s−1} + b),   Q(z) = λ/L · clip(floor(z·L/λ + ½), 0, L),   h_0 = 0
    logits = V·h_784 + c

an IRNN (Le et al. 2015: U starts as the identity, b = 0), trained with Adam,
gradient-norm clipping and a straight-through gradient for the floor. The
recurrence is exported, with onnx.helper from the trained weights, as an ONNX
``Scan`` over the pixels whose body is the quantized cell written with the op
chain onnx2snn recognises as a quantized activation::

    Add(MatMul(x_s, Wᵀ), MatMul(h, Uᵀ)) → Add(b) → Div(λ) → Clip(0, 1) → Mul(L) → Add(½)
      → Floor → Div(L) → Mul(λ)

followed by a ``Gemm`` readout of h_784. Input ``image`` float32 ``[batch,
784]``, output ``logits`` float32 ``[batch, 10]``; opset 13, IR 8.

The torch model evaluates the cell with the same float32 operations in the same
order as the ONNX graph, so torch and onnxruntime differ only where their
matrix products round differently; the script reports how often that changes
a prediction. Training stops after ``--epochs`` or before the epoch that would
end past ``--minutes``; the last epoch's weights are exported (no selection on
the test digits, whose accuracy is only printed).

Data: ``mnist10k.npz`` (10,000 shuffled real MNIST digits): the first 8,000
train, the last 2,000 test. torch is needed only by this script.
"""
from __future__ import annotations

import argparse
import random
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
N_TRAIN = 8000
SEQ = 784


def qcfs(z: torch.Tensor, lam: torch.Tensor, levels: int) -> torch.Tensor:
    """λ/L · clip(floor(z/λ·L + ½), 0, L) with the ONNX chain's float32 ops in its order."""
    return torch.floor(torch.clamp(z / lam, 0, 1) * levels + 0.5) / levels * lam


class QuantizedRNNFunction(torch.autograd.Function):
    """The whole recurrence with hand-written BPTT (one autograd node instead of ~10 per pixel).

    Forward: h_s = Q(z_s), z_s = (x_s·w + h_{s−1}·Uᵀ) + b; returns the states at every
    ``every``-th step [S/every, N, H] (the last one is h_S). Backward: QCFS's straight-through
    gradient, dQ/dz = [0 ≤ z ≤ λ] and dQ/dλ = Q(z)/λ − [0 ≤ z ≤ λ]·z/λ.
    """

    @staticmethod
    def forward(ctx, x, w, ut, b, lam, levels: int, every: int):
        n, steps = x.shape
        hs = x.new_zeros(steps + 1, n, ut.shape[0])  # h_0 … h_S
        zs = torch.empty_like(hs[1:])
        for s in range(steps):
            zs[s] = (x[:, s:s + 1] * w + hs[s] @ ut) + b
            hs[s + 1] = qcfs(zs[s], lam, levels)
        ctx.save_for_backward(x, ut, lam, hs, zs)
        ctx.every = every
        return hs[every::every].clone()

    @staticmethod
    def backward(ctx, grad_states):
        x, ut, lam, hs, zs = ctx.saved_tensors
        every = ctx.every
        inside = (zs >= 0) & (zs <= lam)
        gz = torch.empty_like(zs)    # dLoss/dz_s
        gh_all = torch.empty_like(zs)  # dLoss/dh_s (s = 1 … S)
        gh = torch.zeros_like(hs[0])
        ut_t = ut.t()
        for s in range(zs.shape[0] - 1, -1, -1):
            if (s + 1) % every == 0:
                gh = gh + grad_states[(s + 1) // every - 1]
            gh_all[s] = gh
            gz[s] = gh * inside[s]
            gh = gz[s] @ ut_t
        hidden = ut.shape[0]
        grad_ut = hs[:-1].reshape(-1, hidden).t() @ gz.reshape(-1, hidden)
        grad_w = (x.t().unsqueeze(2) * gz).sum((0, 1)).unsqueeze(0)
        grad_b = gz.sum((0, 1))
        grad_lam = (gh_all * (hs[1:] / lam - torch.where(inside, zs / lam, torch.zeros_like(zs)))).sum()
        return None, grad_w, grad_ut, grad_b, grad_lam.reshape(lam.shape), None, None


class QuantizedRNN(nn.Module):
    def __init__(self, hidden: int, levels: int, w_std: float, lam: float) -> None:
        super().__init__()
        self.levels = levels
        self.w = nn.Parameter(torch.randn(1, hidden) * w_std)        # Wᵀ: [1, H]
        self.ut = nn.Parameter(torch.eye(hidden))                    # Uᵀ: [H, H], identity (IRNN)
        self.b = nn.Parameter(torch.zeros(hidden))
        self.lam = nn.Parameter(torch.tensor(float(lam)))
        self.fc = nn.Linear(hidden, 10)

    def states(self, x: torch.Tensor, every: int) -> torch.Tensor:
        """Hidden states after every ``every``-th pixel, [784/every, N, H]; the last is h_784.

        The cell as in the ONNX Scan body: Q((x_s·Wᵀ + h·Uᵀ) + b), where x_s·Wᵀ (K = 1) is
        the exact product x_s·w."""
        return QuantizedRNNFunction.apply(x, self.w, self.ut, self.b, self.lam, self.levels, every)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 784] → logits [N, 10]."""
        return self.fc(self.states(x, x.shape[1])[-1])


@torch.no_grad()
def accuracy(model: QuantizedRNN, x: torch.Tensor, y: torch.Tensor, bs: int = 500) -> float:
    model.eval()
    return sum(int((model(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum()) for i in range(0, len(x), bs)) / len(x)


def export_onnx(model: QuantizedRNN, path: Path) -> onnx.ModelProto:
    """The trained model as an ONNX Scan (cell = quantized activation chain) + Gemm readout."""
    f32 = np.float32
    H, L = model.w.shape[1], model.levels
    t = {k: v.detach().numpy().astype(f32) for k, v in model.state_dict().items()}
    lam = np.asarray(t["lam"], f32)
    body_inits = [onnx.numpy_helper.from_array(v, k) for k, v in {
        "W_t": t["w"], "U_t": t["ut"], "b": t["b"], "lambda": lam, "zero": np.asarray(0, f32),
        "one": np.asarray(1, f32), "levels": np.asarray(L, f32), "half": np.asarray(0.5, f32)}.items()]
    body = oh.make_graph(
        [oh.make_node("MatMul", ["x_s", "W_t"], ["xw"], name="input_weights"),
         oh.make_node("MatMul", ["h_prev", "U_t"], ["hu"], name="recurrent_weights"),
         oh.make_node("Add", ["xw", "hu"], ["xw_hu"], name="sum"),
         oh.make_node("Add", ["xw_hu", "b"], ["pre"], name="bias"),
         oh.make_node("Div", ["pre", "lambda"], ["q1"], name="qcfs/div_lambda"),
         oh.make_node("Clip", ["q1", "zero", "one"], ["q2"], name="qcfs/clip"),
         oh.make_node("Mul", ["q2", "levels"], ["q3"], name="qcfs/mul_levels"),
         oh.make_node("Add", ["q3", "half"], ["q4"], name="qcfs/add_half"),
         oh.make_node("Floor", ["q4"], ["q5"], name="qcfs/floor"),
         oh.make_node("Div", ["q5", "levels"], ["q6"], name="qcfs/div_levels"),
         oh.make_node("Mul", ["q6", "lambda"], ["h_next"], name="qcfs/mul_lambda")],
        "quantized_relu_cell",
        [oh.make_tensor_value_info("h_prev", onnx.TensorProto.FLOAT, ["N", H]),
         oh.make_tensor_value_info("x_s", onnx.TensorProto.FLOAT, ["N", 1])],
        [oh.make_tensor_value_info("h_next", onnx.TensorProto.FLOAT, ["N", H])],
        body_inits)
    inits = {"seq_axes": np.array([2], np.int64), "batch_index": np.array([0], np.int64),
             "hidden_size": np.array([H], np.int64), "V_t": t["fc.weight"].T.copy(), "c": t["fc.bias"]}
    graph = oh.make_graph(
        [oh.make_node("Unsqueeze", ["image", "seq_axes"], ["pixels"], name="pixels_as_sequence"),
         oh.make_node("Shape", ["image"], ["image_shape"], name="h0/shape"),
         oh.make_node("Gather", ["image_shape", "batch_index"], ["batch"], name="h0/batch", axis=0),
         oh.make_node("Concat", ["batch", "hidden_size"], ["h0_shape"], name="h0/h0_shape", axis=0),
         oh.make_node("ConstantOfShape", ["h0_shape"], ["h0"], name="h0/zeros",
                      value=onnx.numpy_helper.from_array(np.zeros(1, f32), "zero")),
         oh.make_node("Scan", ["h0", "pixels"], ["h_last"], name="rnn", body=body, num_scan_inputs=1,
                      scan_input_axes=[1]),
         oh.make_node("Gemm", ["h_last", "V_t", "c"], ["logits"], name="readout")],
        "seqmnist_qrnn",
        [oh.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["N", SEQ])],
        [oh.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", 10])],
        [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)],
                      producer_name="onnx2snn models/make_seqmnist_rnn.py")
    m.ir_version = 8
    m.doc_string = (f"Quantized ReLU RNN (QCFS, L={L}, hidden {H}) on sequential MNIST: image [N, 784] "
                    "= pixels/255 row by row, one pixel per step; logits [N, 10].")
    onnx.checker.check_model(m, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(path))
    return m


def check_onnxruntime(path: Path, model: QuantizedRNN, x: torch.Tensor, y: torch.Tensor) -> None:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {"image": x[i:i + 500].numpy()})[0] for i in range(0, len(x), 500)])
    with torch.no_grad():
        model.eval()
        ref = torch.cat([model(x[i:i + 500]) for i in range(0, len(x), 500)]).numpy()
    diff = np.abs(got - ref).max(1)
    same = int((got.argmax(1) == ref.argmax(1)).sum())
    print(f"onnxruntime vs torch on {len(x)} test digits: same prediction {same}/{len(x)}, "
          f"logits equal within 1e-5 on {int((diff <= 1e-5).sum())}/{len(x)}, max |logit diff| {diff.max():.2e}")
    print(f"ONNX test accuracy: {100 * float((got.argmax(1) == y.numpy()).mean()):.2f}% "
          f"(torch {100 * float((ref.argmax(1) == y.numpy()).mean()):.2f}%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "mnist10k.npz")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "seqmnist_qrnn.onnx")
    ap.add_argument("--checkpoint", type=Path, default=REPO_ROOT / "out" / "seqmnist_qrnn.pt")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--levels", type=int, default=8, help="quantization levels L (default 8)")
    ap.add_argument("--lam", type=float, default=2.0, help="initial λ")
    ap.add_argument("--w-std", type=float, default=0.3, help="std of the initial input weights")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=25.0, help="training time budget (whole epochs)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--input-lr-scale", type=float, default=0.1, help="learning rate of W and λ relative to --lr")
    ap.add_argument("--recurrent-lr-scale", type=float, default=0.01,
                    help="learning rate of U and b relative to --lr")
    ap.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--time-epoch", action="store_true", help="time one epoch and exit")
    ap.add_argument("--export-only", action="store_true", help="export --checkpoint, no training")
    args = ap.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    d = np.load(args.data)
    x_all = torch.from_numpy(d["images"].reshape(-1, SEQ).astype(np.float32) / 255.0)
    y_all = torch.from_numpy(d["labels"].astype(np.int64))
    x_tr, y_tr, x_te, y_te = x_all[:N_TRAIN], y_all[:N_TRAIN], x_all[N_TRAIN:], y_all[N_TRAIN:]

    model = QuantizedRNN(args.hidden, args.levels, args.w_std, args.lam)
    if args.export_only:
        model.load_state_dict(torch.load(args.checkpoint))
    else:
        # W, λ, b and U act at each of the 784 steps: their effect on h_784 is hundreds of times
        # that of the readout's weights, so they get smaller learning rates (else Adam's first
        # steps saturate or silence every hidden unit)
        opt = torch.optim.Adam([{"params": list(model.fc.parameters())},
                                {"params": [model.w, model.lam], "lr": args.lr * args.input_lr_scale},
                                {"params": [model.b, model.ut], "lr": args.lr * args.recurrent_lr_scale}], lr=args.lr)
        gen = torch.Generator().manual_seed(args.seed)
        t0 = time.perf_counter()
        epochs = 1 if args.time_epoch else args.epochs
        for epoch in range(epochs):
            model.train()
            perm = torch.randperm(N_TRAIN, generator=gen)
            total, correct = 0.0, 0
            for i in range(0, N_TRAIN, args.batch_size):
                idx = perm[i:i + args.batch_size]
                logits = model(x_tr[idx])
                loss = F.cross_entropy(logits, y_tr[idx])
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
                opt.step()
                total += loss.item() * len(idx)
                correct += int((logits.argmax(1) == y_tr[idx]).sum())
                if args.time_epoch and i == 10 * args.batch_size:
                    per = (time.perf_counter() - t0) / 11
                    print(f"{per:.3f} s per batch of {args.batch_size} -> about {per * N_TRAIN / args.batch_size:.0f}"
                          " s per epoch", flush=True)
            elapsed = time.perf_counter() - t0
            print(f"epoch {epoch + 1}: loss {total / N_TRAIN:.4f}, train acc {correct / N_TRAIN:.4f}, "
                  f"test acc {accuracy(model, x_te, y_te):.4f}, λ {model.lam.item():.3f} ({elapsed:.0f} s)", flush=True)
            if args.time_epoch:
                return
            args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), args.checkpoint)
            if elapsed * (epoch + 2) / (epoch + 1) > 60 * args.minutes:  # the next epoch would not fit
                break
        print(f"train time: {time.perf_counter() - t0:.0f} s, {epoch + 1} epochs, {args.threads} thread(s)")

    m = export_onnx(model, args.out)
    ops = [n.op_type for n in m.graph.node] + [n.op_type for n in m.graph.node[5].attribute[0].g.node]
    print(f"exported {args.out} (IR {m.ir_version}, opset 13, {args.out.stat().st_size / 1024:.1f} KiB): "
          f"{', '.join(ops)}")
    check_onnxruntime(args.out, model, x_te, y_te)


if __name__ == "__main__":
    main()
