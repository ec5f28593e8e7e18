"""Einsum equations as axis labels: what the support check, the hoisting and the cost report read.

``labels(equation, ranks)`` spells every operand and the output as one label per axis: a letter
for a named axis, ``("...", j)`` for the j-th axis of the broadcast ellipsis counted from its
right end (so the ellipsis axes of operands of different ranks line up as ONNX broadcasts them).
Without ``->`` the output is the implicit one: the ellipsis axes, then the letters that occur
once, in alphabetical order.

Invariant: a label names one output axis at most; the output's rank is the number of its labels.
"""
from __future__ import annotations

from typing import Sequence, Union

Label = Union[str, tuple]


def _tokens(term: str) -> list[str]:
    out, i = [], 0
    while i < len(term):
        if term.startswith("...", i):
            out.append("...")
            i += 3
        else:
            out.append(term[i])
            i += 1
    return out


def labels(equation: str, ranks: Sequence[int | None]) -> tuple[list[list[Label]], list[Label]] | None:
    """(labels of each operand, labels of the output), or None when the equation does not parse,
    does not match the ranks, or has an ellipsis on an operand of unknown rank."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = [_tokens(t) for t in lhs.split(",")]
    if len(terms) != len(ranks) or any(not (c == "..." or c.isalpha()) for t in terms for c in t):
        return None
    operands, widest = [], 0
    for term, rank in zip(terms, ranks):
        letters = [c for c in term if c != "..."]
        if term.count("...") > 1:
            return None
        if "..." not in term:
            if rank is not None and rank != len(letters):
                return None
            operands.append(list(term))
            continue
        if rank is None or rank < len(letters):
            return None
        width = rank - len(letters)
        widest = max(widest, width)
        at = term.index("...")
        operands.append(list(term[:at]) + [("...", j) for j in range(width - 1, -1, -1)] + list(term[at + 1:]))
    ellipsis = [("...", j) for j in range(widest - 1, -1, -1)]
    if arrow:
        out_terms = _tokens(rhs)
        if any(not (c == "..." or c.isalpha()) for c in out_terms) or out_terms.count("...") > 1:
            return None
        out: list[Label] = []
        for c in out_terms:
            out.extend(ellipsis if c == "..." else [c])
    else:
        counts: dict[str, int] = {}
        for term in terms:
            for c in term:
                if c != "...":
                    counts[c] = counts.get(c, 0) + 1
        out = ellipsis + sorted(c for c, n in counts.items() if n == 1)
    if len(set(out)) != len(out):
        return None
    return operands, out


def sizes(operands: list[list[Label]], shapes: Sequence[Sequence[int]]) -> dict:
    """The size of every label (broadcast ellipsis axes: the largest)."""
    found: dict = {}
    for ops, shape in zip(operands, shapes):
        for label, dim in zip(ops, shape):
            found[label] = max(found.get(label, 1), int(dim))
    return found
