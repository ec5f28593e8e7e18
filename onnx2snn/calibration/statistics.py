"""Streaming statistics of one activation tensor: max and a histogram.

Values are grouped per channel (axis 1) or for the whole layer. Only positive
values enter the histogram (a ReLU output is zero for most inputs; the
percentile of the active values is the robust threshold of Rueckauer et al.
2017 and snntoolbox). The histogram has a fixed number of equal-width bins
starting at 0; when a larger value arrives the bin width doubles (adjacent
bins merge), so memory stays fixed however many batches stream by and the
counts stay exact up to the bin width.
"""
from __future__ import annotations

import numpy as np


class ActivationStats:
    def __init__(self, channel_wise: bool, bins: int = 2048):
        if bins % 2:
            raise ValueError("bins must be even")
        self.channel_wise = channel_wise
        self.bins = bins
        self.max: np.ndarray | None = None  # [G] largest value seen (0 when none > 0)
        self.hist: np.ndarray | None = None  # [G, bins] counts of positive values
        self.width: np.ndarray | None = None  # [G] bin width (0 until a positive value is seen)
        self.samples = 0
        self.shape: tuple | None = None  # one sample's shape, e.g. (C, H, W)

    def _groups(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float32)
        if a.ndim < 2:
            a = a.reshape(-1, 1)
        if self.channel_wise:
            return np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)
        return a.reshape(1, -1)

    def update(self, a: np.ndarray) -> None:
        """Add one batch ``a`` [N, C, ...] of activations."""
        if self.shape is None:
            self.shape = tuple(np.asarray(a).shape[1:])
        g = self._groups(a)
        self.samples += int(np.asarray(a).shape[0]) if np.asarray(a).ndim else 1
        G, B = g.shape[0], self.bins
        if self.max is None:
            self.max = np.zeros(G, np.float64)
            self.hist = np.zeros((G, B), np.int64)
            self.width = np.zeros(G, np.float64)
        elif G != self.max.shape[0]:
            raise ValueError(f"activation has {G} channels, earlier batches had {self.max.shape[0]}")
        if g.shape[1] == 0:
            return
        bmax = g.max(axis=1).astype(np.float64)
        self.max = np.maximum(self.max, bmax)
        for c in np.nonzero(bmax > 0)[0]:
            if self.width[c] == 0:
                self.width[c] = bmax[c] * (1 + 1e-7) / B
            while bmax[c] >= self.width[c] * B:
                h = self.hist[c].reshape(B // 2, 2).sum(axis=1)
                self.hist[c] = 0
                self.hist[c, : B // 2] = h
                self.width[c] *= 2
        pos = g > 0
        if not pos.any():
            return
        rows = np.broadcast_to(np.arange(G)[:, None], g.shape)[pos]
        widths = self.width[rows]
        idx = np.minimum((g[pos] / widths).astype(np.int64), B - 1)
        self.hist += np.bincount(rows * B + idx, minlength=G * B).reshape(G, B)

    def percentile(self, p: float) -> np.ndarray:
        """Per group, the p-th percentile of the positive values (upper bin edge, capped at max);
        0 for a group that never was positive."""
        if self.hist is None:
            raise ValueError("no data collected")
        total = self.hist.sum(axis=1)
        cum = np.cumsum(self.hist, axis=1)
        target = np.ceil(total * (p / 100.0) - 1e-9).clip(min=1)
        idx = (cum < target[:, None]).sum(axis=1)
        value = (np.minimum(idx, self.bins - 1) + 1) * self.width
        return np.where(total > 0, np.minimum(value, self.max), 0.0)
