"""ANN clean-up passes: no spiking knowledge. Each module is one pass ``graph -> PassResult``
(or a check) whose docstring states its invariant; :func:`onnx2snn.pipeline.prepare` chains them."""
from ..core.graph import PassResult, export_graph, import_model
from .activations import activation_nodes, relu_cap
from .check_support import check_not_snn, check_supported, find_unsupported
from .fold_batchnorm import FoldBatchNormPass
from .fold_constants import FoldConstantsPass
from .leaky_relu import LeakyReluPass
from .move_maxpool import MoveMaxPoolPass
from .quantizers import DetectQuantizedActivationsPass
from .remove_identity import RemoveIdentityPass

__all__ = ["PassResult", "export_graph", "import_model", "activation_nodes", "relu_cap", "check_not_snn",
           "check_supported", "find_unsupported", "FoldBatchNormPass", "FoldConstantsPass", "LeakyReluPass", "MoveMaxPoolPass",
           "DetectQuantizedActivationsPass", "RemoveIdentityPass"]
