"""The neuron step loops in every instruction set the library dispatches to.

On x86-64 the IFNeuron / BIFNeuron step loops are compiled for baseline x86-64, AVX2
and AVX-512 and the widest the CPU has is used; ONNX2SNN_KERNEL_ISA lowers the
choice (read when a kernel is created: each session below gets the value the variable
has at its creation; the library's onnx2snn_kernel_isa() reports the choice). Each
variant must equal the numpy reference bit for bit on every loop shape: per-element
thresholds (short channel runs), one threshold per run (layer-wise, long channel runs,
with vector tails), NCHWc lanes of 8 and 16, both resets and the fused second input
X2. On a CPU without AVX-512 (or AVX2) the request falls back to the widest
available, which is then tested again.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import rng_array
from onnx2snn import get_library_path
from onnx2snn.neurons import bif_neuron, if_neuron
from test_blocked_layout import neuron_session, to_blocked

ISAS = ["base", "avx2", "avx512"]
CASES = {  # (H, W), channels, per-channel θ, channel_block
    "per-element thresholds": ((9, 7), 6, True, 0),
    "layer-wise threshold": ((13, 11), 6, False, 0),
    "channel runs with tails": ((13, 11), 6, True, 0),
    "nchwc-8": ((5, 3), 16, True, 8),
    "nchwc-16": ((5, 3), 32, True, 16),
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("op,reset", [("IFNeuron", "subtract"), ("IFNeuron", "zero"), ("BIFNeuron", None)])
@pytest.mark.parametrize("add", [False, True], ids=["x", "x+x2"])
def test_step_loops_match_reference_in_every_isa(monkeypatch, isa, case, op, reset, add):
    monkeypatch.setenv("ONNX2SNN_KERNEL_ISA", isa)
    (h, w), c, per_channel, b = CASES[case]
    T, N = 5, 3
    x = rng_array(T * N, c, h, w, seed=1) * 0.9
    x2 = rng_array(T * N, c, h, w, seed=2) * 0.5
    theta = rng_array(c, seed=3, low=0.2, high=1.0) if per_channel else np.array([0.6], np.float32)
    attrs = {"timesteps": T} | ({"reset": reset} if reset else {"levels": 3, "min_level": -2})
    current = x + x2 if add else x  # numpy's float32 add: what the fused kernel must reproduce
    if op == "IFNeuron":
        want = if_neuron(current, theta, timesteps=T, reset=reset)
    else:
        want = bif_neuron(current, theta, timesteps=T, levels=3, min_level=-2)
    layout = (lambda a: to_blocked(a, b)) if b else (lambda a: a)
    inputs = ["X", "threshold"] + (["", "X2"] if add else [])
    feeds = {"X": layout(x), "threshold": theta} | ({"X2": layout(x2)} if add else {})
    got = neuron_session(op, inputs, **attrs, **({"channel_block": b} if b else {})).run(None, feeds)[0]
    np.testing.assert_array_equal(got, layout(want))


def test_unknown_isa_request_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("ONNX2SNN_KERNEL_ISA", "sse9")
    x = rng_array(4, 3, 5, seed=4)
    with pytest.raises(Exception, match="ONNX2SNN_KERNEL_ISA must be base, avx2 or avx512.*'sse9'"):
        neuron_session("IFNeuron", ["X", "threshold"], timesteps=2).run(None, {"X": x, "threshold": np.ones(3, np.float32)})


def _reported_isa(requested: str | None) -> str | None:
    """What the library's onnx2snn_kernel_isa() returns in a fresh process run with
    ONNX2SNN_KERNEL_ISA = ``requested`` (None: unset), loaded through ctypes alone."""
    env = {k: v for k, v in os.environ.items() if k != "ONNX2SNN_KERNEL_ISA"}
    if requested is not None:
        env["ONNX2SNN_KERNEL_ISA"] = requested
    code = ("import ctypes, sys; f = ctypes.CDLL(sys.argv[1]).onnx2snn_kernel_isa; f.restype = ctypes.c_char_p; "
            "r = f(); print(r.decode() if r is not None else 'NULL')")
    out = subprocess.run([sys.executable, "-c", code, get_library_path()], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    return None if out == "NULL" else out


def test_library_reports_the_isa_it_chose():
    assert _reported_isa("base") == "base"
    widest = _reported_isa(None)  # the CPU's widest
    assert widest in ISAS
    for isa in ISAS:  # a request is lowered to what the CPU has, never raised
        assert _reported_isa(isa) == ISAS[min(ISAS.index(isa), ISAS.index(widest))]
    assert _reported_isa("sse9") is None  # unknown: kernels refuse to be created
