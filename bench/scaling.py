"""Prefill time and peak memory against audio length: hr_jax unpruned, hr_jax pruned, transformers.

    python -m bench.scaling --preset small --seconds 30,120,300,600,1200 \
        --json bench/results/scaling.json --png bench/results/scaling.png

Each (implementation, ratio, length) runs in its own child process, so that its peak resident memory
(`ru_maxrss`) is its own: the child builds the model and the inputs, records its resident memory,
then times the LLM prefill as `bench.run`'s `prefill` stage does (hr_jax: the AOT-compiled
`prefill_embeds_core`; transformers: the language model from the embeddings, sdpa) and reports the
peak. The parent watches every child: one whose resident memory passes `--mem-limit-gb` (default 22,
what a 24 GB machine leaves a process) is killed and recorded as not fitting; one that runs past
`--timeout` is killed and recorded as such. Nothing waits unbounded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

POINT_FLAG = "--point"
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _self_rss() -> int:
    return _rss(os.getpid())


def run_point(preset: str, impl: str, ratio: float, seconds: float, repeats: int) -> dict:
    """In the child: one prefill measurement, with the process's memory before and at its peak."""
    import tempfile
    import warnings

    warnings.simplefilter("ignore")
    from bench import flops as F
    from bench.hr_jax_bench import UNPRUNED, HrJaxBench, make_model, synth_batch
    from bench.presets import preset_config

    cfg = preset_config(preset)
    model = make_model(cfg, preset, "float32")
    batch = synth_batch(cfg, seconds, 1)
    warmup = 1 if seconds <= 120 else 0  # a long point's one run is long enough to need no warm-up
    with tempfile.TemporaryDirectory(prefix="hr_jax_scaling_") as tmp:
        if impl == "hr_jax":
            bench = HrJaxBench(model, 2)
            base = _self_rss()
            res = bench.prefill(batch, ratio, UNPRUNED if ratio == 0 else "headrouter", repeats, warmup)
        else:
            from bench.torch_bench import torch_bench

            bench = torch_bench(model, "float32", tmp)
            base = _self_rss()
            res = bench.prefill(batch, repeats, warmup)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sh = F.bench_shapes(seconds, cfg)
    return {
        "median_s": res["median_s"],
        "times_s": res["times_s"],
        "xla_bytes": res.get("xla_bytes"),
        "rss_before_bytes": base,
        "peak_rss_bytes": peak,
        "audio_tokens": sh.n_audio,
        "seq": sh.seq,
    }


def measure_point(
    preset: str, impl: str, ratio: float, seconds: float, repeats: int, mem_limit: float, timeout: float
) -> dict:
    """Runs one point in a child process under the memory watchdog and the time limit."""
    cmd = [
        sys.executable,
        "-m",
        "bench.scaling",
        POINT_FLAG,
        preset,
        impl,
        str(ratio),
        str(seconds),
        str(repeats),
    ]
    rec = {"impl": impl, "ratio": ratio, "seconds": seconds, "preset": preset}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        t0, peak_seen, status = time.monotonic(), 0, None
        while child.poll() is None:
            peak_seen = max(peak_seen, _rss(child.pid))
            if peak_seen > mem_limit:
                status = f"over {mem_limit / 2**30:g} GiB resident: killed"
            elif time.monotonic() - t0 > timeout:
                status = f"over {timeout:.0f} s: killed"
            if status:
                child.kill()
                break
            time.sleep(0.05)
        out, err = child.communicate(timeout=60)
    rec["wall_s"] = time.monotonic() - t0
    rec["watchdog_peak_rss_bytes"] = peak_seen
    if status is None and child.returncode != 0:
        status = f"exit {child.returncode}: {err.strip().splitlines()[-1] if err.strip() else 'no message'}"
    if status is not None:
        rec["status"] = status
        return rec
    result = next((ln for ln in out.splitlines() if ln.startswith("RESULT")), None)
    if result is None:
        rec["status"] = "no result printed"
        return rec
    rec.update(json.loads(result[len("RESULT") :]), status="ok")
    return rec


def table(records: list[dict]) -> str:
    hdr = (
        f"{'impl':12s} {'ratio':>5} {'audio':>8} {'tokens':>7} {'prefill s':>10} {'peak RSS GB':>11}  status"
    )
    lines = [hdr, "-" * len(hdr)]
    for r in records:
        ok = r["status"] == "ok"
        t = f"{r['median_s']:.2f}" if ok else "-"
        mem = (r.get("peak_rss_bytes") if ok else r.get("watchdog_peak_rss_bytes")) or 0
        lines.append(
            f"{r['impl']:12s} {r['ratio']:>5g} {_length(r['seconds']):>8} {r.get('audio_tokens', ''):>7} "
            f"{t:>10} {mem / 1e9:>11.2f}  {r['status']}"
        )
    return "\n".join(lines)


def _length(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"


def plot(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (impl, ratio), style in {
        ("hr_jax", 0.0): "o-",
        ("hr_jax", 0.6): "s-",
        ("transformers", 0.0): "^-",
    }.items():
        rows = [r for r in records if r["impl"] == impl and r["ratio"] == ratio and r["status"] == "ok"]
        if not rows:
            continue
        label = f"{impl}" + (f", r = {ratio:g}" if ratio else ", unpruned")
        x = [r["seconds"] / 60 for r in rows]
        ax_t.plot(x, [r["median_s"] for r in rows], style, label=label)
        ax_m.plot(x, [r["peak_rss_bytes"] / 1e9 for r in rows], style, label=label)
        for r in records:
            if r["impl"] == impl and r["ratio"] == ratio and r["status"] != "ok":
                ax_m.plot(r["seconds"] / 60, 24, "x", color=ax_m.lines[-1].get_color(), markersize=10)
    ax_m.axhline(24, color="grey", linestyle="--", linewidth=1)
    ax_m.text(0.5, 24.3, "24 GB (x: did not fit)", color="grey", fontsize=8)
    for ax, title, unit in ((ax_t, "LLM prefill time", "seconds"), (ax_m, "peak resident memory", "GB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("audio length (minutes)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(records[0]["preset"] + " preset, float32, batch 1")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == POINT_FLAG:
        preset, impl, ratio, seconds, repeats = argv[1:6]
        rec = run_point(preset, impl, float(ratio), float(seconds), int(repeats))
        print("RESULT" + json.dumps(rec), flush=True)
        return [rec]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seconds", default="30,120,300,600,1200")
    ap.add_argument("--runs", default="hr_jax:0,hr_jax:0.6,transformers:0", help="impl:ratio, comma list")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per point (1 beyond 120 s)")
    ap.add_argument("--mem-limit-gb", type=float, default=22.0)
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per point")
    ap.add_argument("--json", default=None)
    ap.add_argument("--png", default=None)
    a = ap.parse_args(argv)
    runs = [(impl, float(r)) for impl, r in (x.split(":") for x in a.runs.split(","))]
    records: list[dict] = []
    stopped: set[tuple[str, float]] = set()
    for seconds in (float(s) for s in a.seconds.split(",")):
        for impl, ratio in runs:
            if (impl, ratio) in stopped:  # a longer clip cannot fit where a shorter one did not
                status = "not run: a shorter clip did not fit"
                rec = {"impl": impl, "ratio": ratio, "seconds": seconds, "preset": a.preset, "status": status}
            else:
                repeats = a.repeats if seconds <= 120 else 1
                rec = measure_point(
                    a.preset, impl, ratio, seconds, repeats, a.mem_limit_gb * 2**30, a.timeout
                )
                if rec["status"] != "ok":
                    stopped.add((impl, ratio))
            records.append(rec)
            ok = rec["status"] == "ok"
            done = f", {rec['median_s']:.2f} s, peak {rec['peak_rss_bytes'] / 1e9:.2f} GB" if ok else ""
            print(
                f"[scaling] {impl} r={ratio:g} {_length(seconds)}: {rec['status']}{done}",
                file=sys.stderr,
                flush=True,
            )
            if a.json:  # after every point: an interrupted sweep keeps what it measured
                Path(a.json + ".tmp").write_text(json.dumps(records, indent=1))
                os.replace(a.json + ".tmp", a.json)
    print(table(records))
    if a.png:
        plot(records, a.png)
    return records


if __name__ == "__main__":
    main()
