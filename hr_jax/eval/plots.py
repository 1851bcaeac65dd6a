"""Figures like the paper's Fig. 7 (routing distribution) and Fig. 3 (kept tokens over the waveform).

Both take plain arrays and write a PNG with matplotlib's Agg backend (no display needed);
:mod:`hr_jax.eval.report` picks the data out of a run directory.

* :func:`routing_distribution`: one stacked bar per task, the mean mixing coefficients
  (alpha_sem, alpha_uni, alpha_aco) of HeadRouter's Gaussian soft routing over the task's samples.
* :func:`kept_tokens`: the waveform of one sample, once per method, with the audio tokens the
  method kept shaded. One audio token covers 40 ms = 640 samples at 16 kHz, token i the samples
  [640 i, 640 (i+1)). An energy "oracle" row (the k highest-energy tokens, as the paper's Fig. 3
  oracle) can be added with :func:`energy_oracle_mask`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from hr_jax.audio import SAMPLE_RATE, SAMPLES_PER_AUDIO_TOKEN

PROFILE_LABELS = ("Semantic", "Uniform", "Acoustic")
PROFILE_COLORS = ("#4C72B0", "#BBBBBB", "#DD8452")
METHOD_COLORS = {
    "oracle": "#2CA02C",
    "headrouter": "#E377C2",
    "frame": "#1F77B4",
    "fastv": "#FF7F0E",
    "dart": "#9467BD",
    "random": "#8C564B",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def routing_distribution(
    alphas: Mapping[str, np.ndarray], out_path: str, title: str = "Dynamic routing distribution"
) -> str:
    """Stacked bars of the mean alpha per task (paper Fig. 7).

    Args:
        alphas: ``{task label: [N, 3] array}`` of per-sample (semantic, uniform, acoustic)
            coefficients, in display order.
        out_path: PNG path (parent directories are created).
        title: figure title.

    Returns:
        `out_path`.
    """
    plt = _pyplot()
    labels = list(alphas)
    means = np.array([np.asarray(alphas[k], dtype=float).reshape(-1, 3).mean(axis=0) for k in labels])
    counts = [len(np.asarray(alphas[k]).reshape(-1, 3)) for k in labels]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) + 2.0), 3.6))
    bottom = np.zeros(len(labels))
    x = np.arange(len(labels))
    for c in range(3):
        vals = means[:, c] if len(labels) else np.zeros(0)
        ax.bar(x, vals, bottom=bottom, color=PROFILE_COLORS[c], label=PROFILE_LABELS[c], width=0.7)
        bottom += vals
    ax.set_xticks(x, [f"{k}\n(n={n})" for k, n in zip(labels, counts, strict=True)], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(r"mean $\bar\alpha_k$")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False, fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path


def energy_oracle_mask(waveform: np.ndarray, num_audio: int, keep: int) -> np.ndarray:
    """The `keep` audio tokens of highest RMS energy (ties to the earlier token), as a mask."""
    n = SAMPLES_PER_AUDIO_TOKEN
    wav = np.asarray(waveform, dtype=np.float64)
    padded = np.zeros(num_audio * n)
    m = min(len(wav), len(padded))
    padded[:m] = wav[:m]
    energy = np.sqrt((padded.reshape(num_audio, n) ** 2).mean(axis=1))
    order = np.lexsort((np.arange(num_audio), -energy))  # descending energy, then index
    mask = np.zeros(num_audio, dtype=bool)
    mask[order[: max(0, min(keep, num_audio))]] = True
    return mask


def mask_spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as (start, length) in token units."""
    m = np.asarray(mask, dtype=np.int8)
    if m.size == 0:
        return []
    edges = np.diff(np.concatenate([[0], m, [0]]))
    starts = np.nonzero(edges == 1)[0]
    ends = np.nonzero(edges == -1)[0]
    return [(int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)]


def _envelope(wav: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bins = max(1, min(bins, len(wav)))
    edges = np.linspace(0, len(wav), bins + 1).astype(int)
    lo = np.array([wav[a:b].min() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=True)])
    hi = np.array([wav[a:b].max() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=True)])
    t = edges[:-1] / SAMPLE_RATE
    return t, lo, hi


def kept_tokens(
    waveform: np.ndarray,
    masks: Mapping[str, np.ndarray],
    out_path: str,
    title: str = "",
    order: Sequence[str] | None = None,
    informative: Sequence[tuple[float, float]] = (),
) -> str:
    """The waveform once per method with its kept audio tokens shaded (paper Fig. 3).

    Args:
        waveform: 16 kHz mono samples.
        masks: ``{method label: bool mask over the audio tokens}``.
        out_path: PNG path (parent directories are created).
        title: figure title (sample id, task, ratio).
        order: display order of the labels (default: the mapping's order).
        informative: ``(start, end)`` seconds where the answer is (a synthetic clip's segments), drawn
            as a band under each waveform.

    Returns:
        `out_path`.
    """
    plt = _pyplot()
    labels = list(order) if order is not None else list(masks)
    wav = np.asarray(waveform, dtype=np.float32)
    peak = float(np.abs(wav).max()) or 1.0
    t, lo, hi = _envelope(wav / peak, 4000)
    tok_s = SAMPLES_PER_AUDIO_TOKEN / SAMPLE_RATE
    fig, axes = plt.subplots(
        len(labels), 1, figsize=(10, 0.9 * len(labels) + 0.8), sharex=True, squeeze=False
    )
    for ax, label in zip(axes[:, 0], labels, strict=True):
        mask = np.asarray(masks[label], dtype=bool)
        spans = [(s * tok_s, n * tok_s) for s, n in mask_spans(mask)]
        color = METHOD_COLORS.get(label.split()[0].lower(), "#E377C2")
        ax.broken_barh(spans, (-1.05, 2.1), facecolors=color, alpha=0.35, linewidth=0)
        ax.fill_between(t, lo, hi, color="#333333", linewidth=0.3)
        if informative:
            ax.broken_barh([(a, b - a) for a, b in informative], (-1.1, 0.12), facecolors="#2CA02C")
        ax.set_ylim(-1.1, 1.1)
        ax.set_yticks([])
        ax.set_ylabel(
            f"{label}\n{int(mask.sum())}/{mask.size}", rotation=0, ha="right", va="center", fontsize=8
        )
        ax.set_xlim(0, max(len(wav) / SAMPLE_RATE, mask.size * tok_s))
    axes[-1, 0].set_xlabel("time (s)")
    if title or informative:
        band = "green band: where the answer is" if informative else ""
        axes[0, 0].set_title(" · ".join(x for x in (title, band) if x), fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
