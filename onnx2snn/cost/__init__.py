"""What an SNN costs: spikes, firing rates, synaptic operations and an energy estimate (counting.py; ``report`` runs it),
the exact fan-out convention (fanout.py), the per-operation energies (energy.py), plots and HTML (html.py)."""
from .energy import EnergyModel
from .counting import CostReport, LayerCost, WeightedLayerCost, report

__all__ = ["CostReport", "EnergyModel", "LayerCost", "WeightedLayerCost", "report"]
