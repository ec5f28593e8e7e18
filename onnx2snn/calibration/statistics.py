"""Streaming statistics of one activation tensor: max and a histogram, mergeable exactly.

Values are grouped per channel (axis 1) or for the whole layer. Only positive
values enter the histogram (a ReLU output is zero for most inputs; the
percentile of the active values is the robust threshold of Rueckauer et al.
2017 and snntoolbox). The histogram has a fixed number B of equal-width bins
starting at 0, so memory stays fixed however many batches stream by.

The bin width of a group is always a power of two: the smallest w = 2^e with
max < w·B (the value x goes to bin ⌊x / w⌋). When a larger value arrives the
width grows to the new power 2^(e+k) and each group of 2^k adjacent bins is
summed into one. Because ⌊⌊x / w⌋ / 2^k⌋ = ⌊x / (2^k·w)⌋ and division by a
power of two is exact in floating point, that coarsened histogram is the one
the values would have given at the new width directly.

Invariant: the statistics (max, width, histogram, samples) of a set of batches
depend only on the set, not on the order the batches came in nor on how they were
split among several :class:`ActivationStats` later joined with :meth:`merge`;
counts are exact at the final bin width.
"""
from __future__ import annotations

import numpy as np


def pow2_width(peak: np.ndarray, bins: int) -> np.ndarray:
    """Per group, the smallest power of two w with peak < w·bins (0 where peak ≤ 0)."""
    peak = np.asarray(peak, np.float64)
    _, e = np.frexp(np.where(peak > 0, peak / bins, 1.0))
    w = np.ldexp(1.0, e)                        # 2^(e-1) ≤ peak/bins < 2^e, up to the rounding of peak/bins
    w = np.where(peak >= w * bins, w * 2, w)
    w = np.where(peak < w / 2 * bins, w / 2, w)
    return np.where(peak > 0, w, 0.0)


def coarsen(hist: np.ndarray, k: int) -> np.ndarray:
    """Counts ``hist`` [B] at width w, regrouped at width 2^k·w (bin j holds old bins j·2^k .. (j+1)·2^k − 1)."""
    if k == 0:
        return hist
    out = np.zeros_like(hist)
    np.add.at(out, np.arange(hist.shape[0]) >> min(k, 62), hist)
    return out


def _doublings(old: float, new: float) -> int:
    """k with new = 2^k·old (both powers of two)."""
    return int(np.frexp(new)[1] - np.frexp(old)[1])


class ActivationStats:
    def __init__(self, channel_wise: bool, bins: int = 2048):
        if bins % 2:
            raise ValueError("bins must be even")
        self.channel_wise = channel_wise
        self.bins = bins
        self.max: np.ndarray | None = None  # [G] largest value seen (0 when none > 0)
        self.hist: np.ndarray | None = None  # [G, bins] counts of positive values
        self.width: np.ndarray | None = None  # [G] bin width, a power of two (0 until a positive value is seen)
        self.samples = 0
        self.shape: tuple | None = None  # one sample's shape, e.g. (C, H, W)

    def _groups(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float32)
        if a.ndim < 2:
            a = a.reshape(-1, 1)
        if self.channel_wise:
            return np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)
        return a.reshape(1, -1)

    def _grow(self, peak: np.ndarray) -> None:
        """Raise max to ``peak`` where it is larger, coarsening the histograms to the new widths."""
        peak = np.maximum(self.max, peak)
        width = pow2_width(peak, self.bins)
        for c in np.nonzero((width != self.width) & (self.width > 0))[0]:
            self.hist[c] = coarsen(self.hist[c], _doublings(self.width[c], width[c]))
        self.max, self.width = peak, width

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
        self._grow(g.max(axis=1).astype(np.float64))
        pos = g > 0
        if not pos.any():
            return
        rows = np.broadcast_to(np.arange(G)[:, None], g.shape)[pos]
        idx = np.minimum((g[pos] / self.width[rows]).astype(np.int64), B - 1)  # exact: w is a power of two
        self.hist += np.bincount(rows * B + idx, minlength=G * B).reshape(G, B)

    def merge(self, other: "ActivationStats") -> "ActivationStats":
        """Add the statistics of ``other`` (batches of the same tensor seen elsewhere) to these; returns self.
        Exact: the result equals one pass over both sets of batches, in any order."""
        if (other.channel_wise, other.bins) != (self.channel_wise, self.bins):
            raise ValueError(f"cannot merge statistics with channel_wise={other.channel_wise}, bins={other.bins} "
                             f"into channel_wise={self.channel_wise}, bins={self.bins}")
        if other.max is None:
            self.samples += other.samples
            return self
        if self.max is None:
            self.max, self.hist, self.width = other.max.copy(), other.hist.copy(), other.width.copy()
            self.samples, self.shape = self.samples + other.samples, other.shape
            return self
        if other.max.shape != self.max.shape or other.shape != self.shape:
            raise ValueError(f"cannot merge statistics of samples {other.shape} ({other.max.shape[0]} groups) "
                             f"into {self.shape} ({self.max.shape[0]} groups)")
        self._grow(other.max)
        for c in np.nonzero(other.width > 0)[0]:
            self.hist[c] += coarsen(other.hist[c], _doublings(other.width[c], self.width[c]))
        self.samples += other.samples
        return self

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
