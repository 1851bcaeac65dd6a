"""bench.accuracy: the oracle recall of informative tokens, the bootstrap intervals, coarse buckets."""

from __future__ import annotations

import numpy as np
import pytest

from bench.accuracy import differences_markdown, informative_tokens, paired_difference, recall
from hr_jax.engine import buckets
from hr_jax.eval import metrics, results


def test_informative_tokens_are_those_centred_in_a_segment():
    mask = informative_tokens({"segments": [[0.1, 0.3], [1.0, 1.04]]}, 30)
    assert np.flatnonzero(mask).tolist() == [2, 3, 4, 5, 6, 25]  # centres (t + 0.5) / 25 s


def test_recall_is_the_share_of_informative_tokens_kept():
    records = {"a": {"segments": [[0.0, 0.4]]}, "b": {"segments": [[0.0, 0.4]]}}
    keep_first_half = np.zeros(20, bool)
    keep_first_half[:5] = True  # 5 of the 10 informative tokens
    rows = {
        "a": {"num_audio": 20, "kept_mask": results.encode_mask(keep_first_half)},
        "b": {"num_audio": 20, "kept_mask": None},  # unpruned: everything kept
    }
    assert recall(rows, records) == pytest.approx(75.0)


def test_bootstrap_interval_brackets_the_metric():
    correct = np.array([True] * 40 + [False] * 10)
    lo, hi = metrics.bootstrap_interval(lambda idx: 100.0 * correct[idx].mean(), correct.size)
    assert lo < 80.0 < hi and 60.0 < lo and hi < 95.0
    assert metrics.bootstrap_interval(lambda idx: 0.0, 0) is None


def test_coarse_buckets_round_to_whole_seconds_of_audio(monkeypatch):
    # frame_multiple takes the family's own granularity (Qwen: two 200-frame encoder windows)
    assert buckets.token_multiple(64, 25.0) == 64 and buckets.frame_multiple(400) == 400
    monkeypatch.setenv(buckets.BUCKET_SECONDS_ENV, "20")
    assert buckets.token_multiple(64, 25.0) == 512  # Qwen: 500 tokens rounded up to whole multiples of 64
    assert buckets.token_multiple(64, 12.5) == 256  # Phi-4 makes half as many tokens a second
    assert buckets.frame_multiple(400) == 2000
    monkeypatch.setenv(buckets.BUCKET_SECONDS_ENV, "fast")
    with pytest.raises(ValueError, match="HR_JAX_BUCKET_SECONDS"):
        buckets.bucket_seconds()


def _rows(correct: list[bool]) -> dict[str, dict]:
    """Digit transcripts of two words, right or all wrong (word accuracy = share right)."""
    return {f"digits-{i:05d}": {"reference": "one two", "prediction": "one two" if c else "nine nine",
                                "correct": c} for i, c in enumerate(correct)}  # fmt: skip


def test_paired_difference_is_the_gap_in_the_metric_with_an_interval_around_it():
    good, bad = [True] * 45 + [False] * 5, [True] * 25 + [False] * 25
    data = {("digits", "headrouter", 0.6): _rows(good), ("digits", "random", 0.6): _rows(bad)}
    d = paired_difference(data, ["digits"], ("headrouter", 0.6), ("random", 0.6), resamples=200)
    assert d["diff"] == pytest.approx(40.0)  # word accuracy 90 vs 50
    lo, hi = d["ci"]
    assert 0 < lo < 40 < hi
    assert "**+40.0" in differences_markdown([d])  # the interval excludes 0: marked


def test_identical_methods_differ_by_zero_with_a_degenerate_interval():
    rows = _rows([True, False] * 20)
    data = {("digits", "headrouter", 0.3): rows, ("digits", "frame", 0.3): dict(rows)}
    d = paired_difference(data, ["digits"], ("headrouter", 0.3), ("frame", 0.3), resamples=100)
    assert d["diff"] == 0.0 and d["ci"] == (0.0, 0.0)  # paired: the same clips each time
