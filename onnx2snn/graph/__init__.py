"""Graph passes: one module each, every pass a callable ``graph -> PassResult``."""
from ._graph import PassResult, export_graph, import_model
from .check_support import check_supported, find_unsupported
from .fold_batchnorm import FoldBatchNormPass
from .fold_constants import FoldConstantsPass
from .hoist_time_invariant import HoistTimeInvariantPass
from .move_maxpool import MoveMaxPoolPass
from .readout import RUNNING_SUFFIX, ReadoutPass
from .remove_identity import RemoveIdentityPass
from .spike import SpikeActivationsPass, activation_nodes
from .time_axis import AddTimeAxisPass

__all__ = [
    "PassResult", "export_graph", "import_model", "check_supported", "find_unsupported",
    "FoldBatchNormPass", "FoldConstantsPass", "HoistTimeInvariantPass", "MoveMaxPoolPass", "ReadoutPass", "RUNNING_SUFFIX",
    "RemoveIdentityPass", "SpikeActivationsPass", "activation_nodes", "AddTimeAxisPass",
]
