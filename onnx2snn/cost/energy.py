"""Energy per operation for the operation-count model of :mod:`onnx2snn.cost.counting`.

Defaults: 45 nm CMOS, Horowitz (ISSCC 2014, "Computing's energy problem"): a multiply-accumulate
is a multiply plus an add, an accumulate (a synaptic operation of a spike) an add.

=========  ======  ======  =========  ========
precision  mult    add     E_MAC      E_AC
=========  ======  ======  =========  ========
fp32       3.7 pJ  0.9 pJ  4.6 pJ     0.9 pJ
fp16       1.1 pJ  0.4 pJ  1.5 pJ     0.4 pJ
int8       0.2 pJ  0.03 pJ 0.23 pJ    0.03 pJ
=========  ======  ======  =========  ========

Memory accesses are not counted: the model compares arithmetic only.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

PRESETS = {"fp32": (4.6, 0.9), "fp16": (1.5, 0.4), "int8": (0.23, 0.03)}


@dataclass(frozen=True)
class EnergyModel:
    e_mac_pj: float
    e_ac_pj: float
    name: str = "custom"

    @staticmethod
    def preset(name: str) -> "EnergyModel":
        if name not in PRESETS:
            raise ConfigError(f"energy preset '{name}' is not known; use one of {', '.join(PRESETS)}")
        mac, ac = PRESETS[name]
        return EnergyModel(mac, ac, f"{name}, 45 nm (Horowitz 2014)")

    def __post_init__(self):
        for label, value in (("E_MAC", self.e_mac_pj), ("E_AC", self.e_ac_pj)):
            if not value > 0:
                raise ConfigError(f"{label} must be a positive energy in pJ, got {value}")
