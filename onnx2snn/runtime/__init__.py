"""Running SNNs: sessions with the op library (blocked layout, chunks), streaming, memory, evaluation."""
from .evaluate import EvaluationResult, evaluate, running_output_name, snn_timesteps
from .session import InferenceSession

__all__ = ["EvaluationResult", "evaluate", "running_output_name", "snn_timesteps", "InferenceSession"]
