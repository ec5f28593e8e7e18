"""Frozen configuration of a conversion; CLI flags map one-to-one to fields."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from . import methods
from .errors import ConfigError


class ThresholdMethod(str, Enum):
    MAX = "max"
    PERCENTILE = "percentile"
    MSE = "mse"
    LTB = "ltb"


class VInit(str, Enum):
    """Initial membrane potential: 0, or θ/2 (rounding instead of flooring)."""

    ZERO = "zero"
    HALF = "half"


class Calibration(str, Enum):
    """Layer-wise parameter calibration steps (Li et al. 2021, 2022)."""

    BIAS = "bias"
    POTENTIAL = "potential"
    WEIGHT = "weight"


class Reset(str, Enum):
    SUBTRACT = "subtract"
    ZERO = "zero"


class Form(str, Enum):
    """How the SNN runs its T steps (see README, "Runtime forms")."""

    FOLDED = "folded"        # all T steps in one run, time folded into the batch axis (IFNeuron custom op)
    STREAMING = "streaming"  # one step per run; membrane potentials are explicit inputs/outputs
    PORTABLE = "portable"    # folded, with the neurons as standard ONNX ops (Scan): no custom-op library
    CUMULATIVE = "cumulative"  # BIF only: folded, layers fed cumulative spike counts; bit-exact with the ANN


class Neuron(str, Enum):
    """Which spiking neuron replaces the activations."""

    IF = "if"      # integrate-and-fire, thresholds calibrated on data (rate coding)
    BIF = "bif"    # bipolar IF with bounded count: lossless for quantized activations, no calibration
    AUTO = "auto"  # bif when every activation of the graph is quantized, else if
    TSEP = "tsep"  # integrate-then-fire, temporal separation: each layer is the T-level quantised ReLU exactly


@dataclass(frozen=True)
class ThresholdSpec:
    """How each neuron's threshold is balanced from the calibration statistics.

    ``max``: the largest activation seen; ``percentile``: the given percentile
    of the positive activations (robust to outliers, Rueckauer et al. 2017);
    ``mse``: the θ minimising the T-level quantisation error
    ‖a − clip_floor(a; T, θ)‖² (SNN Calibration); ``ltb``: local threshold
    balancing (Bu, Li, Yu 2024), iterative per-channel updates on clipped
    activations.
    """

    method: ThresholdMethod = ThresholdMethod.MAX
    percentile: float = 100.0

    @staticmethod
    def parse(text: str) -> "ThresholdSpec":
        """Parse ``max`` or ``percentile:P`` with 0 < P <= 100."""
        text = text.strip()
        if text in ("max", "mse", "ltb"):
            return ThresholdSpec(ThresholdMethod(text))
        if text.startswith("percentile:"):
            raw = text.split(":", 1)[1]
            try:
                p = float(raw)
            except ValueError:
                p = float("nan")
            if not 0.0 < p <= 100.0:
                raise ConfigError(
                    f"threshold '{text}': the percentile must be a number in (0, 100], "
                    "e.g. percentile:99.99"
                )
            return ThresholdSpec(ThresholdMethod.PERCENTILE, p)
        raise ConfigError(f"threshold '{text}' is not known; use max, percentile:P (e.g. percentile:99.99), "
                          "mse or ltb")

    def __str__(self) -> str:
        if self.method is ThresholdMethod.PERCENTILE:
            return f"percentile:{self.percentile:g}"
        return self.method.value


@dataclass(frozen=True)
class ConvertConfig:
    """Everything `convert` needs besides the model and the data."""

    timesteps: int
    threshold: ThresholdSpec = ThresholdSpec(ThresholdMethod.PERCENTILE, 99.99)
    channel_wise: bool = False
    reset: Reset = Reset.SUBTRACT
    batch_size: int = 64  # calibration batch size (models with a fixed batch use theirs)
    v_init: VInit = VInit.ZERO
    calibrate: tuple[Calibration, ...] = ()  # applied in the order bias, potential, weight
    form: Form = Form.FOLDED
    neuron: Neuron = Neuron.AUTO
    max_memory: int | None = None  # bytes one sample of the SNN may take (None: runtime.memory's 4 GiB)
    ray: str | None = None  # the statistics phase on a Ray cluster: "local", "auto" or HOST:PORT (None: here)
    ray_actors: int | None = None  # Ray actors of that phase (None: one per CPU of the cluster)

    def __post_init__(self):
        if isinstance(self.timesteps, bool) or not isinstance(self.timesteps, int) or self.timesteps < 1:
            raise ConfigError(f"timesteps must be an integer >= 1, got {self.timesteps!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch size must be an integer >= 1, got {self.batch_size!r}")
        if self.max_memory is not None and (isinstance(self.max_memory, bool) or not isinstance(self.max_memory, int)
                                            or self.max_memory < 1):
            raise ConfigError(f"max memory must be a number of bytes >= 1, got {self.max_memory!r}")
        if self.ray is not None and (not isinstance(self.ray, str) or not self.ray.strip()):
            raise ConfigError(f"ray must be a Ray address ('local', 'auto' or HOST:PORT) or None, got {self.ray!r}")
        if self.ray_actors is not None and (self.ray is None or isinstance(self.ray_actors, bool)
                                            or not isinstance(self.ray_actors, int) or self.ray_actors < 1):
            raise ConfigError(f"ray_actors must be an integer >= 1 and needs ray, got {self.ray_actors!r}")
        if not isinstance(self.threshold, ThresholdSpec):
            raise ConfigError("threshold must be a ThresholdSpec (use ThresholdSpec.parse('max'))")
        object.__setattr__(self, "reset", Reset(self.reset))
        object.__setattr__(self, "v_init", VInit(self.v_init))
        steps = {Calibration(c) for c in self.calibrate}
        object.__setattr__(self, "calibrate", tuple(c for c in Calibration if c in steps))
        try:
            object.__setattr__(self, "form", Form(self.form))
        except ValueError:
            raise ConfigError(f"form must be one of {', '.join(f.value for f in Form)}, got {self.form!r}") from None
        try:
            object.__setattr__(self, "neuron", Neuron(self.neuron))
        except ValueError:
            raise ConfigError(f"neuron must be one of {', '.join(n.value for n in Neuron)}, "
                              f"got {self.neuron!r}") from None
        flags_method = methods.method_of_flags(self)
        if flags_method is not None:
            methods.check(flags_method, self)

    @staticmethod
    def parse_calibrate(text: str) -> tuple[Calibration, ...]:
        """``bias,potential,weight`` (any subset, comma separated; '' or 'none' for none)."""
        parts = [p.strip() for p in text.split(",") if p.strip() and p.strip() != "none"]
        bad = [p for p in parts if p not in {c.value for c in Calibration}]
        if bad:
            raise ConfigError(f"--calibrate: unknown step(s) {bad}; use a comma-separated subset of "
                              "bias,potential,weight")
        return tuple(Calibration(p) for p in parts)


# The pipeline benchmarks/real_models.py found best on the development models (see benchmarks/README.md):
# weight calibration (depthwise convs included) before bias and potential gained 1.5-2.3 points over bias and
# potential alone on the CIFAR ResNet-32 at T = 8 and MobileNetV1 at T = 32.
PRESETS = {
    "best": dict(threshold=ThresholdSpec(ThresholdMethod.MSE), channel_wise=True, v_init=VInit.HALF,
                 calibrate=(Calibration.WEIGHT, Calibration.BIAS, Calibration.POTENTIAL), neuron=Neuron.BIF),
}


def preset_config(name: str, **overrides) -> ConvertConfig:
    """A ConvertConfig from a named preset; ``overrides`` (e.g. timesteps) win."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; known: {', '.join(PRESETS)}")
    return ConvertConfig(**{**PRESETS[name], **overrides})


# The flags that choose a method (neuron, thresholds, initial potential, layer-wise calibration).
METHOD_FIELDS = ("threshold", "channel_wise", "v_init", "calibrate", "neuron")


def default_config(timesteps: int, *, data: bool, **options) -> ConvertConfig:
    """The pipeline ``onnx2snn convert`` runs when no method flag (:data:`METHOD_FIELDS`, ``--preset``) is given.

    With calibration data (``data``): the ``best`` preset, the most accurate across the development models
    (benchmarks/real_models.py); where its bipolar neuron is not available (``form`` streaming or
    portable, ``reset`` zero) the same thresholds and calibration with IF neurons. Without data: the plain
    defaults, which convert a quantized ANN losslessly (a float ANN needs data; recipes say so).
    ``options`` are the non-method fields (form, reset, batch_size, max_memory).
    """
    bad = [k for k in options if k in METHOD_FIELDS or k == "timesteps"]
    if bad:
        raise ConfigError(f"default_config takes no method options ({', '.join(bad)}); use ConvertConfig")
    if not data:
        return ConvertConfig(timesteps=timesteps, **options)
    form = Form(options.get("form", Form.FOLDED))
    reset = Reset(options.get("reset", Reset.SUBTRACT))
    bipolar = form in (Form.FOLDED, Form.CUMULATIVE) and reset is Reset.SUBTRACT
    return preset_config("best", timesteps=timesteps, **options, **({} if bipolar else {"neuron": Neuron.AUTO}))
