"""Metrics, computed with scikit-learn and jiwer (nothing hand-written), all on a 0-100 scale.

* Multiple-choice tasks: F1 over the task's classes (the option letters that occur as
  correct answers), macro-averaged, or support-weighted for speaker gender (SGR), as in the
  paper. An unparsable reply is its own label (:data:`UNPARSED`): it never equals a reference,
  so it lowers the recall of the true class, and since it is not a class of the task it adds
  no zero-F1 class to the average.
* ASR: word accuracy = 100 - WER%, with the corpus WER of jiwer over all utterances after a
  standard normalisation (lower case, hyphens to spaces, punctuation removed, whitespace
  collapsed). WER above 100% (many insertions) is clipped, so word accuracy is never negative.
* MMAU-Pro: accuracy per category; the benchmark average is sample-weighted (all correct
  answers over all questions), as the paper does because categories are imbalanced.
* :func:`relative_to_vanilla`: a score as a percentage of the unpruned run's score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

UNPARSED = "<unparsed>"


def f1(references: Sequence[str], predictions: Sequence[str | None], average: str = "macro") -> float:
    """F1 (0-100) of predicted option letters against references.

    Args:
        references: the correct letters.
        predictions: predicted letters, None for unparsable replies.
        average: "macro" or "weighted" (scikit-learn's meaning), over the classes present in
            `references`.

    Returns:
        The F1 score, or NaN when there are no samples.
    """
    from sklearn.metrics import f1_score

    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if not references:
        return float("nan")
    y_pred = [UNPARSED if p is None else p for p in predictions]
    labels = sorted(set(references))
    return 100.0 * float(f1_score(list(references), y_pred, labels=labels, average=average, zero_division=0))


def _wer_transform():
    import jiwer

    return jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.SubstituteRegexes({r"[-‐‑–—]": " "}),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )


def normalize_transcript(text: str) -> str:
    """The normalised form WER is computed on (lower case, no punctuation, single spaces)."""
    words = _wer_transform()(text or "")
    return " ".join(w for sent in words for w in sent)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate (a fraction) of `hypotheses` against `references` (jiwer).

    Returns NaN when there are no reference words at all.
    """
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    pairs = [(r, h or "") for r, h in zip(references, hypotheses, strict=True) if normalize_transcript(r)]
    if not pairs:
        return float("nan")
    refs = [r for r, _ in pairs]
    hyps = [h for _, h in pairs]
    tr = _wer_transform()
    return float(jiwer.wer(refs, hyps, reference_transform=tr, hypothesis_transform=tr))


def word_accuracy(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Word accuracy (0-100) = 100 - WER%, clipped at 0."""
    wer = word_error_rate(references, hypotheses)
    if wer != wer:  # NaN
        return wer
    return max(0.0, 100.0 * (1.0 - wer))


def accuracy(correct: Sequence[bool]) -> float:
    """Percentage of True values (NaN for none)."""
    from sklearn.metrics import accuracy_score

    if not correct:
        return float("nan")
    return 100.0 * float(accuracy_score([True] * len(correct), [bool(c) for c in correct]))


def sample_weighted_accuracy(per_category: Mapping[str, tuple[int, int]]) -> float:
    """Accuracy (0-100) over all samples from ``{category: (correct, total)}`` (NaN if empty)."""
    correct = sum(c for c, _ in per_category.values())
    total = sum(t for _, t in per_category.values())
    return 100.0 * correct / total if total else float("nan")


def relative_to_vanilla(value: float | None, vanilla: float | None) -> float | None:
    """`value` as a percentage of `vanilla` (None when either is missing, NaN or vanilla is 0)."""
    if value is None or vanilla is None or value != value or vanilla != vanilla or vanilla == 0:
        return None
    return 100.0 * value / vanilla


def bootstrap_interval(
    metric: Callable[[np.ndarray], float], n: int, resamples: int = 500, level: float = 0.95, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of a metric over `n` samples: `metric(idx)` scores the samples
    `idx` (drawn with replacement); returns `(low, high)` at `level`, or None for no samples."""
    if n == 0:
        return None
    rng = np.random.default_rng(seed)
    values = np.array([metric(rng.integers(0, n, n)) for _ in range(resamples)], dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = 100.0 * (1.0 - level) / 2.0
    return float(np.percentile(values, tail)), float(np.percentile(values, 100.0 - tail))
