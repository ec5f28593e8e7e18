"""``onnx2snn export-nir``: an SNN written by ``convert`` as a NIR graph (HDF5), for neuromorphic hardware."""
from __future__ import annotations


def add_parser(sub, parents) -> None:
    e = sub.add_parser("export-nir", parents=parents,
                       help="write the SNN as a NIR graph (Neuromorphic Intermediate Representation) for "
                            "neuromorphic hardware and simulators (needs pip install 'onnx2snn[nir]')")
    e.add_argument("snn", help="the SNN written by `onnx2snn convert` (folded form, IF neurons)")
    e.add_argument("-o", "--output", required=True, help="where to write the NIR graph (.nir, HDF5)")


def run(args) -> int:
    from ..io import check_output_path
    from ..nir import export_nir

    check_output_path(args.output, args.snn)
    graph = export_nir(args.snn, args.output)
    spiking = sum(1 for n in graph.nodes.values() if type(n).__name__ in ("Threshold", "IF"))
    print(f"wrote {args.output}: {len(graph.nodes)} NIR nodes, {len(graph.edges)} edges, {spiking} spiking "
          f"layer(s), T={graph.metadata['onnx2snn.timesteps']}; read it in discrete time with dt = 1 and "
          "average the output over the T steps (docs/nir.md)")
    return 0
