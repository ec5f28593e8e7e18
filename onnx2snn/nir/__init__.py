"""NIR export of onnx2snn SNNs (optional extra ``onnx2snn[nir]``: nir, h5py).

``export_nir(snn, "model.nir")`` writes the SNN as a NIR graph (HDF5) that is exact under the
discrete-time reading of :mod:`.semantics`; :func:`to_nir` returns the ``nir.NIRGraph``;
:func:`.reference.simulate` runs a NIR graph in that reading (numpy). See ``docs/nir.md``.

Invariant: importing this package needs only numpy and onnx; ``nir`` is imported when a graph
is built (a ConfigError saying how to install it when it is missing).
"""
from .export import export_nir, to_nir
from .reference import Simulation, simulate

__all__ = ["export_nir", "to_nir", "simulate", "Simulation"]
