"""Paper-layout tables and figures from a run directory (``hr-jax report RUN_DIR``).

The tables follow the paper: AudioMarathon like Table 1 (semantic tasks SER, SCR, ASR, then
acoustic SED, MC, ASC, ER, SAR, SGR, plus SD/HAD when run; F1 0-100, ASR word accuracy), MMAU-Pro
like Table 2 (Speech, Voice Chat | Sound, Music, Spatial; accuracy), the synthetic tasks of
:mod:`hr_jax.synth` like Table 1 (DIG, SQA | SEV, SCN, MEL, GEN | SAW; F1, DIG word accuracy).
One block per pruning ratio ("Retain 70% Tokens (↓30%)"), the vanilla row on top, methods in the
paper's order.

Columns after the tasks:

* ``Mean``: AudioMarathon and synth, the plain mean over the task columns; MMAU-Pro, the sample-weighted
  accuracy over all questions of the shown categories.
* ``Avg.``: Mean as a percentage of vanilla's Mean over the same columns (vanilla = 100.0%),
  the paper's Avg. (the ratio of the means, which reproduces the paper's numbers).
* ``Diff.``: Avg. - 100%.

Rows with errors (unreadable audio) are counted but not scored. A cell computed on fewer
samples than vanilla's is marked ``*``; a Mean over fewer columns than vanilla has is marked
``*`` too. The best Avg. of each ratio block (among rows covering every column) is in bold.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from hr_jax.eval import metrics, results
from hr_jax.eval.figures import plot_kept, plot_routing
from hr_jax.eval.tasks import (
    ACCURACY,
    AUDIOMARATHON,
    F1_MACRO,
    F1_WEIGHTED,
    MMAU_PRO,
    SYNTH,
    WORD_ACCURACY,
    TaskInfo,
    benchmark_tasks,
    normalize_benchmark,
    resolve_task,
    task_sort_key,
)
from hr_jax.pruning.methods import ALL_METHODS, DISPLAY_NAMES

METHOD_ORDER = ALL_METHODS
METHOD_NAMES = DISPLAY_NAMES
MMAU_LEVELS = {0.3: "Light", 0.6: "Medium", 0.9: "Extreme"}
GROUP_NAMES = {
    "semantic": "Semantic",
    "speech": "Speech",
    "acoustic": "Acoustic",
    "mixed": "Mixed",
    "other": "Other",
}
TITLES = {
    AUDIOMARATHON: "AudioMarathon (paper Table 1 layout)",
    MMAU_PRO: "MMAU-Pro (paper Table 2 layout)",
    SYNTH: "Synthetic tasks (hr_jax.synth, Table 1 layout)",
}
METRIC_NOTES = {
    AUDIOMARATHON: "F1 (0-100) for all tasks except ASR (word accuracy = 100 - WER%); SGR uses weighted F1.",
    MMAU_PRO: "Accuracy (%) per category; Mean is sample-weighted.",
    SYNTH: "F1 (0-100) for all tasks except DIG (word accuracy = 100 - WER%); GEN uses weighted F1.",
}


@dataclasses.dataclass(frozen=True)
class Column:
    """One task (AudioMarathon) or category (MMAU-Pro) column."""

    key: str
    label: str
    group: str
    metric: str


@dataclasses.dataclass(frozen=True)
class Cell:
    """A task's score for one (method, ratio): value 0-100 (None without scored samples)."""

    value: float | None
    n: int
    correct: int
    errors: int
    unparsed: int
    partial: bool = False


@dataclasses.dataclass(frozen=True)
class Row:
    """One table row."""

    method: str
    ratio: float
    cells: dict[str, Cell]
    mean: float | None
    avg_pct: float | None
    diff: float | None
    partial: bool = False

    @property
    def name(self) -> str:
        """Display name of the method."""
        return METHOD_NAMES.get(self.method, self.method)


@dataclasses.dataclass
class Report:
    """Scores of a run, laid out like the paper's tables."""

    benchmark: str
    columns: list[Column]
    rows: list[Row]
    coverage: list[dict[str, Any]]
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def vanilla(self) -> Row | None:
        """The unpruned row, if the run has one."""
        return next((r for r in self.rows if r.method == "vanilla"), None)

    def row(self, method: str, ratio: float) -> Row:
        """The row of (method, ratio); KeyError if absent."""
        for r in self.rows:
            if r.method == method and math.isclose(r.ratio, ratio):
                return r
        raise KeyError((method, ratio))

    def ratios(self) -> list[float]:
        """Pruning ratios present (vanilla excluded), ascending."""
        return sorted({r.ratio for r in self.rows if r.method != "vanilla"})

    def _block_title(self, ratio: float) -> str:
        pct = round(ratio * 100)
        if self.benchmark == MMAU_PRO:
            level = MMAU_LEVELS.get(round(ratio, 2))
            return f"{level + ' ' if level else ''}Token Pruning (↓{pct}%)"
        return f"Retain {100 - pct}% Tokens (↓{pct}%)"

    def _blocks(self) -> list[tuple[str, list[Row]]]:
        blocks = []
        if self.vanilla is not None:
            blocks.append(("Upper Bound, All Tokens (100%)", [self.vanilla]))
        for ratio in self.ratios():
            rows = [r for r in self.rows if r.method != "vanilla" and math.isclose(r.ratio, ratio)]
            blocks.append((self._block_title(ratio), rows))
        return blocks

    def to_markdown(self) -> str:
        """The table (and coverage) as Markdown."""
        title = TITLES.get(self.benchmark, self.benchmark)
        groups: dict[str, list[str]] = {}
        for c in self.columns:
            groups.setdefault(GROUP_NAMES.get(c.group, c.group), []).append(c.label)
        metric_note = METRIC_NOTES.get(self.benchmark, "")
        lines = [
            f"## {title}",
            "",
            " · ".join(f"{g}: {', '.join(labels)}" for g, labels in groups.items()),
            "",
            f"{metric_note} Avg. = Mean as % of Vanilla; Diff. = Avg. - 100%. "
            "Best Avg. per ratio in bold; * = fewer samples (or tasks) than Vanilla.",
            "",
            "| Method | " + " | ".join(c.label for c in self.columns) + " | Mean | Avg. | Diff. |",
            "|---|" + "---:|" * (len(self.columns) + 3),
        ]
        empty = " |" * (len(self.columns) + 3)
        for block, rows in self._blocks():
            lines.append(f"| *{block}* |" + empty)
            best = _best_avg(rows) if block != "Upper Bound, All Tokens (100%)" else None
            for r in rows:
                cells = [_fmt_cell(r.cells.get(c.key)) for c in self.columns]
                avg = _fmt_pct(r.avg_pct)
                if (
                    best is not None
                    and not r.partial
                    and r.avg_pct is not None
                    and math.isclose(r.avg_pct, best)
                ):
                    avg = f"**{avg}**"
                mean = "" if r.mean is None else f"{r.mean:.1f}" + ("*" if r.partial else "")
                diff = "" if r.method == "vanilla" else _fmt_diff(r.diff)
                lines.append(f"| {r.name} | " + " | ".join(cells) + f" | {mean} | {avg} | {diff} |")
        lines += [
            "",
            "### Coverage",
            "",
            "| task | method | ratio | scored | errors | unparsed | expected |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for c in self.coverage:
            lines.append(
                f"| {c['task']} | {c['method']} | {results.format_ratio(c['ratio'])} | {c['scored']} | "
                f"{c['errors']} | {c['unparsed']} | {'' if c['expected'] is None else c['expected']} |"
            )
        if self.notes:
            lines += ["", *[f"- {n}" for n in self.notes]]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """The table as CSV: block, method, ratio, one column per task, mean, avg_pct, diff."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["block", "method", "ratio", *[c.label for c in self.columns], "mean", "avg_pct", "diff"])
        for block, rows in self._blocks():
            for r in rows:
                vals = [r.cells.get(c.key) for c in self.columns]
                w.writerow(
                    [block, r.method, results.format_ratio(r.ratio)]
                    + [_num(None if v is None else v.value) for v in vals]
                    + [_num(r.mean), _num(r.avg_pct), _num(None if r.method == "vanilla" else r.diff)]
                )
        return buf.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _fmt_cell(cell: Cell | None) -> str:
    if cell is None or cell.value is None:
        return "–"
    return f"{cell.value:.1f}" + ("*" if cell.partial else "")


def _fmt_pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}%"


def _fmt_diff(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{'+' if v >= 0.05 else ''}{v:.1f}%" if abs(v) >= 0.05 else "0.0%"


def _best_avg(rows: Sequence[Row]) -> float | None:
    vals = [r.avg_pct for r in rows if r.avg_pct is not None and not r.partial]
    return max(vals) if vals else None


# ----------------------------------------------------------------------------- reading a run


def _summaries(run_dir: str) -> list[dict[str, Any]]:
    out = []
    for root, _dirs, files in sorted(os.walk(run_dir)):
        if "run_summary.json" in files:
            with open(os.path.join(root, "run_summary.json"), encoding="utf-8") as f:
                out.append(json.load(f))
    return out


def load_rows(run_dir: str) -> dict[tuple[str, str, float], dict[str, dict[str, Any]]]:
    """``{(task, method, ratio): {id: row}}`` from every result file under `run_dir`.

    Per-host subdirectories are merged; a repeated id keeps its first row.
    """
    out: dict[tuple[str, str, float], dict[str, dict[str, Any]]] = {}
    for path in results.result_files(run_dir):
        task, method, ratio = results.parse_result_name(path)  # type: ignore[misc]
        for row in results.read_results(path):
            key = (row.get("task", task), row.get("method", method), float(row.get("ratio", ratio)))
            out.setdefault(key, {}).setdefault(str(row["id"]), row)
    return out


def _infer_benchmark(run_dir: str, task_keys: Sequence[str]) -> str:
    for s in _summaries(run_dir):
        if s.get("benchmark"):
            return normalize_benchmark(s["benchmark"])
    am = {t.key for t in benchmark_tasks(AUDIOMARATHON)}
    if any(k in am for k in task_keys) or not task_keys:
        return AUDIOMARATHON
    synth = {t.key for t in benchmark_tasks(SYNTH)}
    return SYNTH if any(k in synth for k in task_keys) else MMAU_PRO


def score_cell(info: TaskInfo, rows: Sequence[dict[str, Any]]) -> Cell:
    """Score one task's rows with its metric; error rows are counted, not scored."""
    ok = [r for r in rows if not r.get("error")]
    errors = len(rows) - len(ok)
    unparsed = sum(1 for r in ok if r.get("prediction") is None)
    correct = sum(1 for r in ok if r.get("correct"))
    if not ok:
        return Cell(None, 0, 0, errors, unparsed)
    refs = [str(r["reference"]) for r in ok]
    if info.metric == WORD_ACCURACY:
        value = metrics.word_accuracy(refs, [r.get("prediction") or "" for r in ok])
    elif info.metric in (F1_MACRO, F1_WEIGHTED):
        avg = "weighted" if info.metric == F1_WEIGHTED else "macro"
        value = metrics.f1(refs, [r.get("prediction") for r in ok], average=avg)
    elif info.metric == ACCURACY:
        value = metrics.accuracy([bool(r.get("correct")) for r in ok])
    else:
        raise ValueError(f"unknown metric {info.metric!r}")
    return Cell(None if math.isnan(value) else value, len(ok), correct, errors, unparsed)


def build_report(run_dir: str, tasks: Sequence[str] | None = None) -> Report:
    """Score every result file under `run_dir` and lay the scores out like the paper.

    Args:
        run_dir: a run directory written by :func:`hr_jax.eval.runner.run_eval` (or by hand,
            in the same format).
        tasks: restrict and order-check the columns (task keys, abbreviations or names), e.g.
            the paper's nine AudioMarathon tasks.
    """
    data = load_rows(run_dir)
    task_keys = sorted({k[0] for k in data})
    bench = _infer_benchmark(run_dir, task_keys)
    infos = {k: resolve_task(bench, k) for k in task_keys}
    if tasks:
        wanted = [resolve_task(bench, t) for t in tasks]
        infos = {t.key: t for t in wanted}
    columns_info = sorted(infos.values(), key=task_sort_key)
    columns = [Column(t.key, t.abbrev, t.group, t.metric) for t in columns_info]

    expected: dict[str, int] = {}
    for s in _summaries(run_dir):  # one per host; each host expects its share of a task
        per_task: dict[str, int] = {}
        for f in s.get("files", []):
            per_task[f["task"]] = max(per_task.get(f["task"], 0), int(f.get("expected", 0)))
        for t, n in per_task.items():
            expected[t] = expected.get(t, 0) + n
    pairs = sorted({(m, r) for (_t, m, r) in data}, key=lambda p: (p[1], _method_rank(p[0]), p[0]))
    cells: dict[tuple[str, float], dict[str, Cell]] = {}
    coverage = []
    for m, r in pairs:
        cells[(m, r)] = {}
        for col in columns_info:
            rows = list(data.get((col.key, m, r), {}).values())
            if not rows:
                continue
            cell = score_cell(col, rows)
            cells[(m, r)][col.key] = cell
            coverage.append(
                {
                    "task": col.key,
                    "method": m,
                    "ratio": r,
                    "scored": cell.n,
                    "errors": cell.errors,
                    "unparsed": cell.unparsed,
                    "expected": expected.get(col.key),
                }
            )
    vanilla_cells = cells.get(("vanilla", 0.0), {})
    rows_out = []
    for m, r in pairs:
        rc = cells[(m, r)]
        if m != "vanilla":
            rc = {
                k: dataclasses.replace(c, partial=k in vanilla_cells and c.n < vanilla_cells[k].n)
                for k, c in rc.items()
            }
        keys = [c.key for c in columns if c.key in rc and rc[c.key].value is not None]
        shared = [k for k in keys if k in vanilla_cells and vanilla_cells[k].value is not None]
        use = shared if vanilla_cells else keys
        mean = _mean(bench, rc, use)
        van_mean = _mean(bench, vanilla_cells, use) if vanilla_cells else None
        avg_pct = metrics.relative_to_vanilla(mean, van_mean)
        partial = bool(vanilla_cells) and len(use) < len(
            [k for k in vanilla_cells if vanilla_cells[k].value is not None and k in {c.key for c in columns}]
        )
        rows_out.append(Row(m, r, rc, mean, avg_pct, None if avg_pct is None else avg_pct - 100.0, partial))
    notes = []
    if not vanilla_cells:
        notes.append("No vanilla run: Avg. and Diff. need the unpruned (ratio 0) results.")
    return Report(bench, columns, rows_out, coverage, notes)


def _method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def _mean(bench: str, cells: dict[str, Cell], keys: Sequence[str]) -> float | None:
    if not keys:
        return None
    if bench == MMAU_PRO:
        return metrics.sample_weighted_accuracy({k: (cells[k].correct, cells[k].n) for k in keys})
    return float(np.mean([cells[k].value for k in keys]))


# ----------------------------------------------------------------------------- figures


def write_report(
    run_dir: str,
    out_dir: str | None = None,
    tasks: Sequence[str] | None = None,
    plot_samples: Sequence[str] | None = None,
    plot_ratio: float | None = None,
    make_plots: bool = True,
) -> tuple[Report, dict[str, Any]]:
    """Build the report and write ``report.md``, ``report.csv`` and the PNGs.

    Args:
        run_dir: the run directory.
        out_dir: where to write (default ``<run_dir>/report``).
        tasks: restrict the columns (see :func:`build_report`).
        plot_samples: sample ids (or ``task:id``) for the kept-token figure.
        plot_ratio: ratio of the kept-token figure (default 0.6 or the closest present).
        make_plots: draw the figures.

    Returns:
        The report and ``{"markdown", "csv", "routing", "kept_tokens"}`` paths written.
    """
    out_dir = out_dir or os.path.join(run_dir, "report")
    os.makedirs(out_dir, exist_ok=True)
    report = build_report(run_dir, tasks)
    paths: dict[str, Any] = {"routing": None, "kept_tokens": []}
    if make_plots:
        data = load_rows(run_dir)
        paths["routing"] = plot_routing(report, data, os.path.join(out_dir, "routing_distribution.png"))
        if paths["routing"] is None:
            report.notes.append("No HeadRouter rows with routing coefficients: routing figure not drawn.")
        paths["kept_tokens"] = plot_kept(report, data, out_dir, plot_samples, plot_ratio)
    paths["markdown"] = os.path.join(out_dir, "report.md")
    paths["csv"] = os.path.join(out_dir, "report.csv")
    results.write_if_changed(paths["markdown"], report.to_markdown())
    results.write_if_changed(paths["csv"], report.to_csv())
    return report, paths
