"""``onnx2snn inspect``: prints :func:`onnx2snn.inspection.inspect_model`'s report; exit 1 if a node does not convert."""
from __future__ import annotations


def add_parser(sub, parents) -> None:
    i = sub.add_parser("inspect", parents=parents, help="list the graph's ops and whether they convert")
    i.add_argument("model", help="ANN in ONNX format")


def run(args) -> int:
    from ..inspection import inspect_model
    from ..io import load_model

    report = inspect_model(load_model(args.model))
    print(f"{args.model}: {report.nodes} nodes, opset {report.opset}{', recurrent' if report.recurrent else ''}")
    print_rows(report.rows)
    for cell in report.cells:
        if cell.rows is None:
            if cell.error is not None:
                print(f"cell of Scan '{cell.scan}': {cell.error}")
            for name, reason in cell.blocking:
                print(f"cell of Scan '{cell.scan}': node '{name}': {reason}")
            continue
        print(f"cell of Scan '{cell.scan}' ({cell.nodes} nodes):")
        print_rows(cell.rows, "  ")
    if report.offenders:
        print(f"not convertible: {len(report.offenders)} node(s) unsupported:")
        for name, reason in report.offenders.items():
            print(f"  - {name}: {reason}")
        return 1
    print("convertible: every node is supported")
    return 0


def print_rows(rows, indent: str = "") -> None:
    print(f"{indent}{'op':<22} {'count':>5}  status")
    for row in rows:
        print(f"{indent}{row.op:<22} {row.count:>5}  {row.status}")
