"""The package's layout rules: no import cycle among onnx2snn modules, layers import downwards only.

Every ``import``/``from ... import`` of an onnx2snn module counts, including the
ones inside functions (a lazy import hides a cycle, it does not remove it).
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "onnx2snn"

# Layers, lowest first: a module may import only from its own layer or lower ones.
LAYERS = [
    {"_version", "errors", "_library", "_progress", "io", "methods", "config", "data", "metadata", "sizes"},
    {"core"},
    {"passes"},
    {"calibration", "neurons", "snn"},
    {"runtime"},
    {"distributed"},
    {"recipes"},
    {"pipeline", "streaming", "inspection", "cost", "nir"},
    {"cli", "__init__", "__main__"},
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if name != "__init__" else []
    if not is_pkg:
        base = base[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base[:len(base) - (node.level - 1)] if node.level > 1 else list(base)
                target = ".".join(parts + (node.module.split(".") if node.module else []))
            elif node.module and (node.module == "onnx2snn" or node.module.startswith("onnx2snn.")):
                target = node.module.removeprefix("onnx2snn").lstrip(".")
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if sub in known else (target or "__init__"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("onnx2snn."):
                    found.add(alias.name.removeprefix("onnx2snn."))
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for k, layer in enumerate(LAYERS):
        if top in layer:
            return k
    raise AssertionError(f"module onnx2snn.{module} is in no layer of tests/test_architecture.py: add it")


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_layers_import_downwards():
    # a package's __init__ may re-export its own modules
    bad = [f"{m} -> {d}" for m, deps in _graph().items() for d in deps
           if _layer(d) > _layer(m) and not d.startswith(m + ".")]
    assert bad == []


def test_checker_sees_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_deprecated_streaming_path_still_works():
    import importlib
    import sys

    import pytest

    import onnx2snn
    sys.modules.pop("onnx2snn.streaming", None)
    with pytest.warns(DeprecationWarning, match="onnx2snn.StreamingSession"):
        module = importlib.import_module("onnx2snn.streaming")
    assert module.StreamingSession is onnx2snn.StreamingSession
