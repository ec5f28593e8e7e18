"""Time semantics of every SNN: neurons in place of activations, the time axis, hoisting, readout."""
from .hoist_time_invariant import HoistTimeInvariantPass
from .readout import RUNNING_SUFFIX, ReadoutPass
from .spike import SpikeActivationsPass
from .time_axis import AddTimeAxisPass

__all__ = ["HoistTimeInvariantPass", "RUNNING_SUFFIX", "ReadoutPass", "SpikeActivationsPass", "AddTimeAxisPass"]
