"""Batched, data-parallel, resumable evaluation of a checkpoint over a benchmark.

How a run proceeds (``run_eval``):

1. Multi-process: when launched as several processes (``JAX_COORDINATOR_ADDRESS``,
   ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` set, or ``HR_JAX_DISTRIBUTED=1`` on a cluster that
   ``jax.distributed`` detects by itself, e.g. SLURM or a TPU pod), :mod:`hr_jax.distributed`
   initialises JAX's runtime first, with bounded timeouts. Each process then evaluates every
   ``process_count``-th sample on its own local mesh and writes its rows under
   ``<out_dir>/process_<index>/``; ``hr-jax report`` merges them. No process waits on another's
   samples; at the end process 0 waits for the others to finish or be declared dead, and names
   the lost ones (their samples are missing; rerunning the same command resumes them).
2. All requested tasks are loaded up front; data problems are printed and written to
   ``load_report.json`` and never stop the run.
3. Devices: a ``("data", "model")`` mesh of ``jax.local_devices()`` (``model_parallel``-way tensor
   parallel, the rest data parallel; :func:`hr_jax.make_mesh`). The model is placed on it once by
   the logical-axis rules and the engine shards each batch's rows over ``"data"`` (``jit`` with
   ``NamedSharding``; no ``pmap``). The batch size is rounded up to a multiple of the data axis.
4. Length bucketing: each task's samples are sorted by audio duration (longest first, so an
   out-of-memory batch shows up at once; ties by id) and cut into batches in that order, so a
   batch holds audios of similar length and the engine's padded-length buckets repeat, letting
   one compiled program serve many batches. The last batch is padded by repeating its last
   sample; padding rows are never written or scored.
5. Every (task, method, ratio) streams to its own JSONL (:mod:`hr_jax.eval.results`), one
   flushed write per batch. On start, ids already in the file are skipped (a partial last line
   from a kill is cut off first), so an interrupted run resumes where it stopped, and a finished
   run is left byte-for-byte untouched. Ctrl-C stops after writing what is done and leaves
   valid files; ``stop_after=N`` stops after N samples (tests use it to simulate a kill).
6. ``run_summary.json`` records the request and each file's progress (rewritten only when its
   content changes).

Vanilla (unpruned) is the method "vanilla" at ratio 0; any method at ratio 0 is vanilla.
Planning lives in :mod:`hr_jax.eval.jobs`, the rows in :mod:`hr_jax.eval.rows` and the engine
adapter in :mod:`hr_jax.eval.generate_fn`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from hr_jax.distributed import finish, initialize_from_env
from hr_jax.engine_options import EngineOptions
from hr_jax.eval import audio_io, results
from hr_jax.eval.audiomarathon import OFFICIAL
from hr_jax.eval.datasets import load_benchmark
from hr_jax.eval.generate_fn import GenerateFn, engine_generate_fn
from hr_jax.eval.jobs import (
    Job,
    batch_seed,
    bucket_order,
    jobs_summary,
    pad_batch,
    plan_methods,
    round_batch_size,
)
from hr_jax.eval.prompts import build_prompt
from hr_jax.eval.rows import error_row, result_row
from hr_jax.eval.run_lock import RunLock
from hr_jax.eval.samples import Sample
from hr_jax.eval.tasks import normalize_benchmark
from hr_jax.sharding import DATA, axis_size, make_mesh

MAX_CONSECUTIVE_FAILURES = 3


class _Stop(Exception):
    """stop_after reached."""


def _load_audios(samples: Sequence[Sample]) -> list[np.ndarray | Exception]:
    out: list[np.ndarray | Exception] = []
    for s in samples:
        try:
            out.append(audio_io.load_waveform(s.audio_paths))
        except Exception as exc:  # a data problem: recorded as an error row, never a crash
            out.append(exc)
    return out


def run_eval(
    ckpt_or_model: Any,
    data_dir: str,
    benchmark: str,
    tasks: Sequence[str] | None,
    methods: Sequence[str],
    ratios: Sequence[float],
    out_dir: str,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    limit: int | None = None,
    router: Any = None,
    stop_after: int | None = None,
    *,
    asr_max_new_tokens: int = 1024,
    seed: int = 0,
    generate_fn: GenerateFn | None = None,
    devices: Sequence[Any] | None = None,
    progress: bool = True,
    check_audio: bool = True,
    selection: str = OFFICIAL,
    model_parallel: int = 1,
    revision: str | None = None,
    dtype: str | None = None,
    options: EngineOptions | None = None,
    truncation: bool = True,
) -> dict[str, Any]:
    """Evaluate a checkpoint over a benchmark for several methods and ratios.

    Args:
        ckpt_or_model: a converted checkpoint directory (loaded with ``hr_jax.load``) or a loaded
            Model; ignored when `generate_fn` is given.
        data_dir: the benchmark directory (:mod:`hr_jax.eval.datasets`).
        benchmark: "audiomarathon", "mmau-pro" or "synth" (:mod:`hr_jax.synth`'s tasks).
        tasks: task names (None or ["all"] for all).
        methods: method names; "vanilla" runs the unpruned model once per task.
        ratios: pruning ratios for the other methods.
        out_dir: the run directory (created; reused to resume).
        batch_size: rows per batch, rounded up to a multiple of the local device count.
        max_new_tokens: generation budget for multiple-choice tasks.
        limit: evaluate only the first `limit` samples of each task (file order).
        router: router file / object handed to the engine (HeadRouter and its ablations).
        stop_after: stop after this many samples in this call (resumable, like an interrupt).
        asr_max_new_tokens: generation budget for ASR (long transcripts).
        seed: base seed; each batch's seed is derived from it and the batch's ids.
        generate_fn: replaces the engine (tests; other backends); see :data:`GenerateFn`.
        devices: devices of the mesh (default ``jax.local_devices()``).
        progress: show a tqdm bar per (task, method, ratio).
        check_audio: probe audio files while loading (duration for bucketing, early problems).
        selection: AudioMarathon's sample selection, "official" (the official scripts') or "all".
        model_parallel: tensor-parallel ways of the local mesh (the rest of the devices is data
            parallel).
        revision: Hub revision, when `ckpt_or_model` is a Hub name.
        options: how the engine runs a checkpoint it loads (`hr_jax.EngineOptions`).
        truncation: cut audio over the feature extractor's length as the official pipelines do
            (default); False takes it whole, up to the decoder's position range.
        dtype: parameter dtype when loading `ckpt_or_model` (default: as converted).

    Returns:
        The run summary (also written to ``<out_dir>/run_summary.json``); its ``status`` is
        "complete", "stopped" (stop_after), "interrupted" (Ctrl-C) or "incomplete" (failed
        batches, which a rerun retries). After MAX_CONSECUTIVE_FAILURES failing batches in a
        row the summary is written with status "failed" and the engine's exception raised.
    """
    initialize_from_env()
    import jax

    bench = normalize_benchmark(benchmark)
    pairs = plan_methods(methods, ratios)
    if not pairs:
        raise ValueError("no methods to run")
    by_task, load_report = load_benchmark(
        bench, data_dir, tasks, check_audio=check_audio, selection=selection
    )
    print(load_report.summary(), file=sys.stderr)

    n_proc, proc = jax.process_count(), jax.process_index()
    run_dir = out_dir if n_proc == 1 else os.path.join(out_dir, f"process_{proc}")
    os.makedirs(run_dir, exist_ok=True)
    with RunLock(run_dir):
        results.write_if_changed(
            os.path.join(run_dir, "load_report.json"),
            json.dumps(load_report.to_dict(), indent=1, ensure_ascii=False) + "\n",
        )

        for task in by_task:
            samples = by_task[task][:limit] if limit is not None else by_task[task]
            by_task[task] = bucket_order(samples[proc::n_proc])

        mesh = make_mesh(model=model_parallel, devices=devices)
        n_dev = mesh.devices.size
        bs = round_batch_size(batch_size, axis_size(mesh, DATA))
        if generate_fn is None:
            from hr_jax.model import load

            model = ckpt_or_model
            if isinstance(model, (str, os.PathLike)):
                model = load(os.fspath(model), dtype, revision=revision, mesh=mesh, options=options)
            generate_fn = engine_generate_fn(model, truncation)  # places the model on the mesh, once

        # (method, ratio) outer, task inner: a pair's programs serve every task, then are released
        jobs = [
            Job(
                task,
                m,
                r,
                results.result_path(run_dir, task, m, r),
                asr_max_new_tokens if any(s.is_asr for s in by_task[task]) else max_new_tokens,
            )
            for m, r in pairs
            for task in by_task
        ]
        release = getattr(generate_fn, "release", None)
        expected = {t: len(s) for t, s in by_task.items()}
        ctx = _Context(bs, mesh, generate_fn, router, seed, stop_after, progress)

        def write_summary(status: str, lost: Sequence[int] = ()) -> dict[str, Any]:
            summary = {
                "benchmark": bench,
                "data_dir": os.path.abspath(data_dir),
                "tasks": list(by_task),
                "methods": [{"method": m, "ratio": r} for m, r in pairs],
                "batch_size": bs,
                "num_devices": int(n_dev),
                "mesh": {k: int(v) for k, v in mesh.shape.items()},
                "process": {"index": proc, "count": n_proc},
                "max_new_tokens": max_new_tokens,
                "asr_max_new_tokens": asr_max_new_tokens,
                "limit": limit,
                "router": router if isinstance(router, (str, type(None))) else repr(type(router)),
                "seed": seed,
                "selection": selection,
                "failed_tasks": list(load_report.failed_tasks),
                "status": status,
                "load": {k: v for k, v in load_report.to_dict().items() if k not in ("problems", "files")},
                "files": jobs_summary(run_dir, jobs, expected),
            }
            if ctx.failures:
                summary["failures"] = ctx.failures
            if lost:
                summary["lost_processes"] = list(lost)
            results.write_if_changed(
                os.path.join(run_dir, "run_summary.json"),
                json.dumps(summary, indent=1, ensure_ascii=False) + "\n",
            )
            return summary

        status = "complete"
        error: Exception | None = None
        try:
            for i, job in enumerate(jobs):
                if stop_after is not None and ctx.processed >= stop_after:
                    raise _Stop
                done = {r["id"] for r in results.read_results(job.path, repair=True)}
                todo = [s for s in by_task[job.task] if s.id not in done]
                if todo:
                    _run_job(job, todo, len(done), ctx)
                    write_summary("running")  # progress on disk, should this process be killed
                last_of_pair = i + 1 == len(jobs) or (jobs[i + 1].method, jobs[i + 1].ratio) != (
                    job.method,
                    job.ratio,
                )
                if last_of_pair and release is not None:
                    release()  # the pair's compiled programs: a long sweep's live programs stay bounded
            if ctx.failures:
                status = "incomplete"
            if load_report.failed_tasks and status == "complete":
                status = "incomplete"  # a task with no audio at all is an error, not a missing column
        except _Stop:
            status = "stopped"
        except KeyboardInterrupt:
            status = "interrupted"
            print("\n[hr_jax.eval] interrupted; results so far are saved, rerun to resume", file=sys.stderr)
        except Exception as exc:  # written into the summary, then raised
            status, error = "failed", exc
        finally:
            ctx.pool.shutdown(wait=True, cancel_futures=True)
            for job in jobs:  # a kill mid-write can leave a partial line: leave valid files behind
                results.read_results(job.path, repair=True)
        summary = write_summary(status)
        if n_proc > 1 and error is None:
            lost = finish()  # process 0 outlives the others: it hosts JAX's coordination service
            if lost:
                names = ", ".join(f"process {i}" for i in lost)
                print(
                    f"[hr_jax.eval] lost {names} (no heartbeat): its samples are missing from {out_dir}; "
                    "rerun the same command to resume them",
                    file=sys.stderr,
                )
                summary = write_summary(status, lost=lost)
        if error is not None:
            raise error
        return summary


@dataclasses.dataclass
class _Context:
    """What every job of a run shares, and the run's progress."""

    batch_size: int
    mesh: Any
    generate_fn: GenerateFn
    router: Any
    seed: int
    stop_after: int | None
    progress: bool
    processed: int = 0
    engine_ok: bool = False  # some engine call succeeded: later row-level ValueErrors are data problems
    consecutive_failures: int = 0
    failures: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    pool: concurrent.futures.ThreadPoolExecutor = dataclasses.field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(max_workers=1)
    )


def _generate_rows(items, job: Job, ctx: _Context, prompts_of: dict[str, str]) -> list[dict[str, Any]]:
    """Run (sample, waveform) items as one padded batch; their result rows, in order."""
    padded = pad_batch(items, ctx.batch_size)
    out = ctx.generate_fn(
        [a for _, a in padded],
        [prompts_of[s.id] for s, _ in padded],
        ratio=job.ratio,
        method=job.method,
        router=ctx.router,
        max_new_tokens=job.max_new_tokens,
        mesh=ctx.mesh,
        seed=batch_seed(ctx.seed, [s.id for s, _ in padded]),
    )
    ctx.engine_ok = True
    return [
        result_row(s, job.method, job.ratio, prompts_of[s.id], out, row, len(padded), len(items))
        for row, (s, _) in enumerate(items)
    ]


def _run_batch(items, job: Job, ctx: _Context, prompts_of: dict[str, str], desc: str) -> list[dict[str, Any]]:
    """Rows for one batch. A ValueError from the engine (bad audio, a ratio leaving no token) is
    isolated by rerunning the batch sample by sample; the samples that still fail get error rows,
    but only when the engine is known to work (another call succeeded), so an engine-wide
    ValueError is a failure of the batch, never a set of permanent error rows."""
    try:
        return _generate_rows(items, job, ctx, prompts_of)
    except ValueError as exc:
        if len(items) == 1:
            if not ctx.engine_ok:
                raise
            s = items[0][0]
            return [error_row(s, job.method, job.ratio, prompts_of[s.id], f"ValueError: {exc}")]
        print(f"[hr_jax.eval] {desc}: batch rejected ({exc}); retrying sample by sample", file=sys.stderr)
    rows, bad = [], []
    for item in items:
        try:
            rows += _generate_rows([item], job, ctx, prompts_of)
        except ValueError as exc1:
            bad.append((item[0], exc1))
    if not ctx.engine_ok:
        raise bad[0][1]
    return rows + [error_row(s, job.method, job.ratio, prompts_of[s.id], f"ValueError: {e}") for s, e in bad]


def _run_job(job: Job, todo: list[Sample], n_done: int, ctx: _Context) -> None:
    """Run the remaining samples of one job, appending a batch of rows at a time."""
    from tqdm.auto import tqdm

    bs = ctx.batch_size
    n_run = len(todo) if ctx.stop_after is None else min(len(todo), max(ctx.stop_after - ctx.processed, 0))
    batches = [todo[i : min(i + bs, n_run)] for i in range(0, n_run, bs)]
    if not batches:
        return
    os.makedirs(os.path.dirname(job.path), exist_ok=True)
    desc = f"{job.task} {job.method} r={results.format_ratio(job.ratio)}"
    bar = tqdm(
        total=n_done + len(todo),
        initial=n_done,
        desc=desc,
        unit="sample",
        disable=not ctx.progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    tokens, seconds = 0, 0.0
    prompts_of = {s.id: build_prompt(s) for b in batches for s in b}
    future = ctx.pool.submit(_load_audios, batches[0])
    try:
        with open(job.path, "a", encoding="utf-8") as f:
            for bi, batch in enumerate(batches):
                audios = future.result()
                if bi + 1 < len(batches):  # load the next batch's audio while this one runs
                    future = ctx.pool.submit(_load_audios, batches[bi + 1])
                rows_by_id: dict[str, dict[str, Any]] = {}
                runnable = []
                for s, a in zip(batch, audios, strict=True):
                    if isinstance(a, Exception):
                        msg = f"{type(a).__name__}: {a}"
                        rows_by_id[s.id] = error_row(s, job.method, job.ratio, prompts_of[s.id], msg)
                    else:
                        runnable.append((s, a))
                if runnable:
                    try:
                        new_rows = _run_batch(runnable, job, ctx, prompts_of, desc)
                    except Exception as exc:
                        ctx.consecutive_failures += 1
                        ids = [s.id for s, _ in runnable]
                        err = f"{type(exc).__name__}: {exc}"
                        ctx.failures.append(
                            {
                                "task": job.task,
                                "method": job.method,
                                "ratio": job.ratio,
                                "ids": ids,
                                "error": err,
                            }
                        )
                        print(
                            f"[hr_jax.eval] {desc}: batch of {len(ids)} failed ({err}); not written, a rerun "
                            "retries it",
                            file=sys.stderr,
                        )
                        if ctx.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                            raise
                    else:
                        ctx.consecutive_failures = 0
                        for r in new_rows:
                            rows_by_id[r["id"]] = r
                            tokens += r["num_generated"]
                            if r.get("timings"):  # each row carries its batch's share of the time
                                t = r["timings"]
                                seconds += (t["batch_prefill_s"] + t["batch_decode_s"]) / max(
                                    t["batch_real"], 1
                                )
                # rows in batch order, whichever samples failed to load
                results.append_rows(f, [rows_by_id[s.id] for s in batch if s.id in rows_by_id])
                ctx.processed += len(batch)
                bar.update(len(batch))
                if seconds > 0:
                    bar.set_postfix(tok_s=f"{tokens / seconds:.1f}", refresh=False)
                if ctx.stop_after is not None and ctx.processed >= ctx.stop_after:
                    raise _Stop
    finally:
        bar.close()
