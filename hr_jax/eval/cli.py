"""Command-line entry points ``hr-jax eval`` and ``hr-jax report`` (argparse).

``eval_main(argv)`` and ``report_main(argv)`` take the arguments after the sub-command and return
a process exit code; ``hr_jax.cli`` dispatches to them.

Examples::

    hr-jax eval --ckpt ckpt/qwen2.5-omni-3b --data-dir ~/data/AudioMarathon --benchmark audiomarathon \\
        --methods vanilla,headrouter,frame,fastv,dart,random --ratios 0.3,0.6,0.9 \\
        --router router-3b.json --batch-size 8 --out runs/am-3b
    hr-jax report runs/am-3b                       # prints the tables, writes runs/am-3b/report/
    hr-jax report runs/am-3b --tasks SER,SCR,ASR,SED,MC,ASC,ER,SAR,SGR   # the paper's nine tasks
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hr_jax.cli_options import NO_TRUNCATION_HELP, add_model_options, engine_options

DEFAULT_METHODS = "vanilla,headrouter,random,frame,fastv,dart"
DEFAULT_RATIOS = "0.3,0.6,0.9"


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ratios(text: str) -> list[float]:
    try:
        return [float(t) for t in _csv(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"ratios must be numbers separated by commas: {text!r}") from exc


def eval_parser() -> argparse.ArgumentParser:
    """Arguments of ``hr-jax eval``."""
    from hr_jax.eval.audiomarathon import OFFICIAL, SELECTIONS

    p = argparse.ArgumentParser(
        prog="hr-jax eval",
        description="Evaluate a converted checkpoint over AudioMarathon, MMAU-Pro or the synthetic tasks "
        "(hr_jax.synth) for several pruning "
        "methods and ratios, data-parallel over all local devices; resumable.",
    )
    add_model_options(p)
    p.add_argument(
        "--data-dir", required=True, help="benchmark directory you downloaded (see hr_jax/eval/README.md)"
    )
    p.add_argument("--benchmark", required=True, help="audiomarathon | mmau-pro | synth")
    p.add_argument(
        "--tasks", default="all", help="comma list of tasks/categories (keys or abbreviations), or all"
    )
    p.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma list (default {DEFAULT_METHODS})")
    p.add_argument(
        "--ratios", type=_ratios, default=_ratios(DEFAULT_RATIOS), help="comma list of pruning ratios"
    )
    p.add_argument("--out", required=True, help="run directory (reuse it to resume)")
    p.add_argument(
        "--batch-size", type=int, default=8, help="rows per batch, rounded up to a multiple of devices"
    )
    p.add_argument("--max-new-tokens", type=int, default=64, help="generation budget, multiple choice")
    p.add_argument("--asr-max-new-tokens", type=int, default=1024, help="generation budget, ASR")
    p.add_argument("--limit", type=int, default=None, help="only the first N samples of each task")
    p.add_argument("--router", default=None, help="router JSON file (HeadRouter and its ablations)")
    p.add_argument("--seed", type=int, default=0, help="base seed (random pruning)")
    p.add_argument("--no-truncation", action="store_true", help=NO_TRUNCATION_HELP)
    p.add_argument("--stop-after", type=int, default=None, help="stop after N samples (resume later)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-check-audio", action="store_true", help="do not probe audio files while loading")
    p.add_argument(
        "--selection",
        default=OFFICIAL,
        choices=SELECTIONS,
        help="AudioMarathon samples: the official scripts' selection (seed 42 balancing of HAD and speaker "
        "gender, VESUS filter; default) or every sample",
    )
    return p


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``hr-jax eval``: returns 0 when complete, 130 when interrupted, 1 when stopped or incomplete, 2 when
    another run holds ``--out``."""
    args = eval_parser().parse_args(argv)
    from hr_jax.distributed import DistributedError
    from hr_jax.eval.run_lock import RunDirLocked
    from hr_jax.eval.runner import run_eval

    try:
        summary = _run(args, run_eval)
    except (RunDirLocked, DistributedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    status = summary["status"]
    print(f"[hr_jax.eval] {status}: results in {args.out}; run `hr-jax report {args.out}`", file=sys.stderr)
    if summary.get("lost_processes"):
        return 1
    return {"complete": 0, "interrupted": 130}.get(status, 1)


def _run(args: argparse.Namespace, run_eval) -> dict:
    return run_eval(
        args.ckpt,
        args.data_dir,
        args.benchmark,
        _csv(args.tasks),
        _csv(args.methods),
        args.ratios,
        args.out,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        limit=args.limit,
        router=args.router,
        stop_after=args.stop_after,
        asr_max_new_tokens=args.asr_max_new_tokens,
        seed=args.seed,
        progress=not args.no_progress,
        check_audio=not args.no_check_audio,
        selection=args.selection,
        model_parallel=args.model_parallel,
        revision=args.revision,
        dtype=args.dtype,
        options=engine_options(args),
        truncation=not args.no_truncation,
    )


def report_parser() -> argparse.ArgumentParser:
    """Arguments of ``hr-jax report``."""
    p = argparse.ArgumentParser(
        prog="hr-jax report",
        description="Print and write (Markdown + CSV) paper-layout tables of a run, and draw the routing "
        "distribution (Fig. 7) and kept tokens over the waveform (Fig. 3).",
    )
    p.add_argument("run_dir", help="run directory written by hr-jax eval")
    p.add_argument("--out", default=None, help="output directory (default RUN_DIR/report)")
    p.add_argument("--tasks", default=None, help="comma list restricting the columns (e.g. the paper's nine)")
    p.add_argument("--plot-samples", default=None, help="comma list of sample ids (or task:id) for Fig. 3")
    p.add_argument("--plot-ratio", type=float, default=None, help="ratio for Fig. 3 (default 0.6 or closest)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    return p


def report_main(argv: Sequence[str] | None = None) -> int:
    """``hr-jax report``: prints the Markdown table, returns 0 (1 when the run has no results)."""
    args = report_parser().parse_args(argv)
    from hr_jax.eval.report import write_report

    report, paths = write_report(
        args.run_dir,
        out_dir=args.out,
        tasks=_csv(args.tasks) if args.tasks else None,
        plot_samples=_csv(args.plot_samples) if args.plot_samples else None,
        plot_ratio=args.plot_ratio,
        make_plots=not args.no_plots,
    )
    print(report.to_markdown())
    written = [paths["markdown"], paths["csv"], paths["routing"], *paths["kept_tokens"]]
    print("written: " + ", ".join(p for p in written if p), file=sys.stderr)
    return 0 if report.rows else 1
