"""The quantizer model: one quantized activation's parameters, and its JSON form in the metadata.

A quantized activation with L levels of step γ is

    a(x) = γ · clip(floor(α·x + β), m, L)                                  (1)

with α ≈ 1/γ: floor for β = 0, round-half-up for β = ½ (QCFS, Bu et al.
2022); m = 0 for the usual non-negative activations, m < 0 for signed ones.

Invariant: ``Quantizer.from_dict(q.as_dict())`` equals ``q`` (α and γ as float64
arrays of shape [] or [C]); the table a canonical model carries
(:func:`onnx2snn.metadata.quantizers_json`) is :func:`quantizers_to_json` of it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ... import metadata


@dataclass(frozen=True)
class Quantizer:
    """a(x) = gamma · clip(floor(alpha·x + beta), lowest, levels); alpha, gamma scalar or per channel."""

    levels: int
    alpha: np.ndarray   # float64, [] or [C]
    beta: float
    gamma: np.ndarray   # float64, [] or [C]
    pattern: str        # "chain" | "qdq"
    rounding: str       # "floor" | "round" (ties to even in the ANN, half up in the SNN)
    lowest: int = 0     # m ≤ 0: the lowest level (negative for signed activations)

    def as_dict(self) -> dict:
        return {"levels": self.levels, "alpha": np.asarray(self.alpha).tolist(), "beta": self.beta,
                "gamma": np.asarray(self.gamma).tolist(), "pattern": self.pattern, "rounding": self.rounding,
                "lowest": self.lowest}

    @staticmethod
    def from_dict(d: dict) -> "Quantizer":
        return Quantizer(int(d["levels"]), np.asarray(d["alpha"], np.float64), float(d["beta"]),
                         np.asarray(d["gamma"], np.float64), str(d["pattern"]), str(d["rounding"]),
                         int(d.get("lowest", 0)))

    @property
    def step(self) -> np.ndarray:
        """γ, the output step (λ/L)."""
        return np.asarray(self.gamma, np.float64)


def quantizers_to_json(quantizers: dict[str, Quantizer]) -> str:
    return json.dumps({k: q.as_dict() for k, q in quantizers.items()}, sort_keys=True)


def quantizers_from_metadata(model) -> dict[str, Quantizer]:
    """The quantizer table a prepared (canonical) model carries in its metadata ({} if none)."""
    text = metadata.quantizers_json(model)
    return {} if text is None else {k: Quantizer.from_dict(v) for k, v in json.loads(text).items()}
