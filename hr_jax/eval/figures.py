"""The report's figures from a run directory's rows: the routing distribution (paper Fig. 7) and the
kept tokens over the waveform (paper Fig. 3), drawn by `hr_jax.eval.plots`."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from hr_jax.eval import plots, results
from hr_jax.eval.audio_io import load_waveform
from hr_jax.pruning.methods import ALL_METHODS, DISPLAY_NAMES


class Report(Protocol):
    """What the figures read of `hr_jax.eval.report.Report`: its task columns (`.key`, `.label`), its
    ratios, and its notes (the figures add theirs)."""

    columns: Sequence[Any]
    notes: list[str]

    def ratios(self) -> list[float]: ...


def _pick_ratio(available: Sequence[float], wanted: float | None) -> float | None:
    if not available:
        return None
    if wanted is not None:
        close = [r for r in available if math.isclose(r, wanted)]
        return close[0] if close else None
    return min(available, key=lambda r: (abs(r - 0.6), r))


def plot_routing(report: Report, data: dict, out_path: str, ratio: float | None = None) -> str | None:
    """Fig. 7 from the HeadRouter rows (alpha per sample); None when the run has none."""
    ratios = sorted({r for (_t, m, r) in data if m == "headrouter"})
    ratio = min(ratios) if ratio is None and ratios else ratio
    alphas = {}
    for col in report.columns:
        rows = data.get((col.key, "headrouter", ratio), {}).values() if ratio is not None else []
        vals = [r["alpha"] for r in rows if r.get("alpha") is not None and not r.get("error")]
        if vals:
            alphas[col.label] = np.asarray(vals, dtype=float)
    if not alphas:
        return None
    return plots.routing_distribution(
        alphas, out_path, title=f"Dynamic routing distribution (HeadRouter, r={results.format_ratio(ratio)})"
    )


def _default_plot_samples(report: Report, data: dict, ratio: float, count: int = 3) -> list[tuple[str, str]]:
    chosen = []
    for col in report.columns:
        ids = set()
        for (t, m, r), rows in data.items():
            if t == col.key and m != "vanilla" and math.isclose(r, ratio):
                ids |= {i for i, row in rows.items() if row.get("kept_mask")}
        if ids:
            chosen.append((col.key, sorted(ids)[0]))
        if len(chosen) >= count:
            break
    return chosen


def plot_kept(
    report: Report, data: dict, out_dir: str, samples: Sequence[str] | None = None, ratio: float | None = None
) -> list[str]:
    """Fig. 3 for chosen samples (``id`` or ``task:id``): the waveform with each method's kept tokens.

    Default: the first sample (by id) of up to three tasks, at ratio 0.6 or the closest ratio
    present. An energy oracle row (top-k RMS energy tokens, k as the methods keep) is added.
    Samples whose audio cannot be loaded are noted in the report and skipped.
    """
    ratio = _pick_ratio(report.ratios(), ratio)
    if ratio is None:
        return []
    if samples:
        wanted = []
        for s in samples:
            task, _, sid = s.rpartition(":")
            tasks_ = [task] if task else [c.key for c in report.columns]
            for t in tasks_:
                if any(sid in rows for (tt, _m, _r), rows in data.items() if tt == t):
                    wanted.append((t, sid))
                    break
            else:
                report.notes.append(f"plot sample {s!r} not found in the run")
    else:
        wanted = _default_plot_samples(report, data, ratio)
    written = []
    for task, sid in wanted:
        masks: dict[str, np.ndarray] = {}
        base = None
        for m in ALL_METHODS[1:]:
            row = data.get((task, m, ratio), {}).get(sid)
            if row and row.get("kept_mask") and row.get("num_audio"):
                masks[DISPLAY_NAMES[m]] = results.decode_mask(row["kept_mask"], int(row["num_audio"]))
                base = base or row
        if base is None:
            report.notes.append(f"{task}:{sid}: no kept-token positions at r={results.format_ratio(ratio)}")
            continue
        try:
            wav = load_waveform(base["audio_paths"])
        except Exception as exc:
            report.notes.append(f"{task}:{sid}: audio not loadable for the kept-token plot ({exc})")
            continue
        na = int(base["num_audio"])
        keep = int(math.floor(na * (1 - ratio)))
        masks = {"Oracle (energy)": plots.energy_oracle_mask(wav, na, keep), **masks}
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{task}_{sid}")
        path = os.path.join(out_dir, f"kept_tokens_{safe}_r{results.format_ratio(ratio)}.png")
        title = f"{task} · {sid} · r={results.format_ratio(ratio)} · {na} audio tokens"
        written.append(plots.kept_tokens(wav, masks, path, title=title))
    return written
