"""Peak memory of SNN runs against onnx2snn.memory's estimate.

For each form, T and batch: a fresh process loads the models, notes its RSS,
runs the ANN and the SNN once on a batch of the bundled MNIST digits, and
reports the peak RSS growth (ru_maxrss − RSS before the runs) next to the
estimate that `evaluate --max-memory` uses for that batch (the folded and portable
SNNs run in chunks of samples, as ``onnx2snn.InferenceSession`` runs them).

    python benchmarks/memory_check.py
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys
import numpy as np, onnxruntime as ort
sys.path.insert(0, sys.argv[1])
import onnx2snn
from onnx2snn.runtime.evaluate import evaluation_estimates
from onnx2snn.config import Form
from onnx2snn import StreamingSession
form, T, batch = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
repo = sys.argv[1]
model = onnx2snn.load_model(repo + "/models/mnist_cnn.onnx")
x = np.load(repo + "/models/data/mnist_test.npz")["x"]
x = np.concatenate([x] * (-(-batch // len(x))))[:batch]
result = onnx2snn.convert(model, {"input": x[:64]}, onnx2snn.ConvertConfig(timesteps=T, form=Form(form)))
estimates = evaluation_estimates(result.ann, result.model)
ann = ort.InferenceSession(result.ann.SerializeToString(), providers=["CPUExecutionProvider"])
snn = StreamingSession(result.model) if form == "streaming" else onnx2snn.InferenceSession(result.model)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
before = rss()
ann.run(None, {"input": x})
snn.run({"input": x}, T) if form == "streaming" else snn.run(None, {"input": x})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"growth": peak - before, "estimate": sum(e.peak(batch) for e in estimates),
                  "chunk": estimates[1].chunk}))
"""


def main() -> None:
    print("| form | T | batch | SNN chunk | estimate MiB | measured peak RSS growth MiB | measured / estimate |")
    print("|---|---|---|---|---|---|---|")
    for form in ("folded", "portable", "streaming"):
        for T, batch in ((8, 64), (32, 64), (32, 256)):
            out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), form, str(T), str(batch)],
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"| {form} | {T} | {batch} | {r['chunk'] or '-'} | {r['estimate'] / 2**20:.0f} | "
                  f"{r['growth'] / 2**20:.0f} | "
                  f"{r['growth'] / r['estimate']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
