"""ActivationStats: power-of-two bin widths make the statistics independent of batch order and
exactly mergeable across shards (the property the Ray statistics phase relies on)."""
import itertools

import numpy as np
import pytest

from onnx2snn.calibration.statistics import ActivationStats, coarsen, pow2_width


def _batches(seed=0):
    rng = np.random.default_rng(seed)
    scales = (0.01, 1.0, 300.0, 0.5, 7.0, 1e-3)  # the range grows and shrinks: widths must double several times
    out = [np.maximum(rng.normal(scale=s, size=(5, 3, 4, 4)), 0).astype(np.float32) for s in scales]
    out[2][:, 2] = 0.0                           # a channel silent in some batches only
    out[4][:, 1] = -1.0
    return out


def _one_pass(batches, channel_wise, bins=64):
    s = ActivationStats(channel_wise, bins)
    for b in batches:
        s.update(b)
    return s


def _same(a: ActivationStats, b: ActivationStats):
    assert a.samples == b.samples and a.shape == b.shape
    np.testing.assert_array_equal(a.max, b.max)
    np.testing.assert_array_equal(a.width, b.width)
    np.testing.assert_array_equal(a.hist, b.hist)


@pytest.mark.parametrize("channel_wise", [False, True])
def test_any_batch_order_gives_the_same_statistics(channel_wise):
    batches = _batches()
    ref = _one_pass(batches, channel_wise)
    for perm in itertools.islice(itertools.permutations(range(len(batches))), 0, None, 97):
        _same(_one_pass([batches[i] for i in perm], channel_wise), ref)


@pytest.mark.parametrize("channel_wise", [False, True])
def test_shards_merged_in_any_order_equal_one_pass(channel_wise):
    batches = _batches(1)
    ref = _one_pass(batches, channel_wise)
    shards = [batches[0:1], batches[1:4], batches[4:]]
    for order in itertools.permutations(range(3)):
        merged = ActivationStats(channel_wise, 64)  # empty: merging into it copies
        for k in order:
            merged.merge(_one_pass(shards[k], channel_wise))
        _same(merged, ref)
    # one stats per batch, merged pairwise as a tree
    parts = [_one_pass([b], channel_wise) for b in batches]
    while len(parts) > 1:
        parts = [parts[i].merge(parts[i + 1]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    _same(parts[0], ref)


def test_histogram_equals_direct_binning_at_the_final_width():
    batches = _batches(2)
    s = _one_pass(batches, channel_wise=True)
    values = np.concatenate([np.moveaxis(b, 1, 0).reshape(3, -1) for b in batches], axis=1)
    for c in range(3):
        w = s.width[c]
        assert w > 0 and np.frexp(w)[0] == 0.5  # a power of two
        assert values[c].max() < w * 64 <= 2 * values[c].max()  # the smallest one above max/B
        pos = values[c][values[c] > 0].astype(np.float64)
        np.testing.assert_array_equal(s.hist[c], np.bincount((pos / w).astype(np.int64), minlength=64))
        assert s.max[c] == values[c].max()


def test_pow2_width_and_coarsen():
    np.testing.assert_array_equal(pow2_width(np.array([0.0, 1.0, 2.0, 3.0, 2.0**-30]), 2),
                                  [0.0, 1.0, 2.0, 2.0, 2.0**-30])  # smallest w with peak < 2w
    h = np.arange(8)
    np.testing.assert_array_equal(coarsen(h, 1), [1, 5, 9, 13, 0, 0, 0, 0])
    np.testing.assert_array_equal(coarsen(h, 3), [28, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(coarsen(h, 70), [28, 0, 0, 0, 0, 0, 0, 0])


def test_merge_refuses_other_tensors_and_keeps_empty_ones_neutral():
    a = _one_pass(_batches()[:2], channel_wise=True)
    with pytest.raises(ValueError, match="channel_wise"):
        a.merge(ActivationStats(False, 64))
    with pytest.raises(ValueError, match="groups"):
        a.merge(_one_pass([np.ones((2, 5), np.float32)], channel_wise=True))
    before = a.hist.copy()
    a.merge(ActivationStats(True, 64))
    np.testing.assert_array_equal(a.hist, before)
