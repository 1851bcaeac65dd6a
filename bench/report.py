"""Markdown tables from `bench.run` JSON files (the tables of bench/RESULTS.md).

python -m bench.report bench/results/*.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{1e3 * x:.1f}"


def comparison_table(records: list[dict]) -> str:
    """hr_jax (every ratio) against unpruned transformers, per stage and batch."""
    hf = {
        (r["preset"], r["seconds"], r["stage"], r["batch"]): r for r in records if r["impl"] == "transformers"
    }
    rows = [
        "| preset | audio s | stage | batch | ratio | method | hr_jax median ms (IQR) | transformers ms (IQR) | "  # noqa: E501
        "hr_jax / HF speed-up | hr_jax tok/s | HF tok/s | hr_jax compile s | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r["impl"] != "hr_jax":
            continue
        t = hf.get((r["preset"], r["seconds"], r["stage"], r["batch"]))
        sp = f"{t['median_s'] / r['median_s']:.2f}x" if t else "-"
        tps = f"{r['tokens_per_s']:.1f}" if r.get("tokens_per_s") else ""
        htps = f"{t['tokens_per_s']:.1f}" if t and t.get("tokens_per_s") else ""
        hfcell = f"{_ms(t['median_s'])} ({_ms(t['iqr_s'])})" if t else "-"
        rows.append(
            f"| {r['preset']} | {r['seconds']:g} | {r['stage']} | {r['batch']} | {r['ratio']:g} | {r['method']} | "  # noqa: E501
            f"{_ms(r['median_s'])} ({_ms(r['iqr_s'])}) | {hfcell} | {sp} | {tps} | {htps} | "
            f"{(r.get('compile_s') or 0):.1f} | {r.get('loadavg_1m')}{' +train' if r.get('training_running') else ''} |"  # noqa: E501
        )
    return "\n".join(rows)


def floor_table(records: list[dict]) -> str:
    rows = [
        "| impl | preset | audio s | stage | batch | ratio | useful GFLOP | useful MB | floor ms | measured ms | "  # noqa: E501
        "fraction of floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r.get("floor_s") is None:
            continue
        rows.append(
            f"| {r['impl']} | {r['preset']} | {r['seconds']:g} | {r['stage']} | {r['batch']} | {r['ratio']:g} | "  # noqa: E501
            f"{r['flops'] / 1e9:.2f} | {r['bytes'] / 2**20:.0f} | {_ms(r['floor_s'])} | {_ms(r['median_s'])} | "  # noqa: E501
            f"{100 * r['floor_fraction']:.1f}% |"
        )
    return "\n".join(rows)


def markdown_row(*cells: object) -> str:
    """One row of a Markdown table."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def pruning_table(records: list[dict]) -> str:
    """Measured LLM-prefill speed-up of each ratio (hr_jax, against its own r = 0) and the FLOP model's."""
    base = {
        (r["preset"], r["seconds"], r["batch"]): r
        for r in records
        if r["impl"] == "hr_jax" and r["stage"] == "prefill" and r["ratio"] == 0
    }
    rows = [
        "| preset | audio s | ratio | method | measured speed-up (wall) | (CPU time) | FLOP-predicted, ideal | "  # noqa: E501
        "FLOP-predicted, as computed | measured / predicted | routing ms | routing % of prefill |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r["impl"] != "hr_jax" or r["stage"] != "prefill" or r["ratio"] == 0:
            continue
        b = base.get((r["preset"], r["seconds"], r["batch"]))
        if not b:
            continue
        meas = b["median_s"] / r["median_s"]
        cpu = b.get("cpu_s_median", 0) / r["cpu_s_median"] if r.get("cpu_s_median") else None
        pred = r.get("predicted_speedup_static") or r.get("predicted_speedup")
        rs = r.get("routing_share")
        routing = _ms(r.get("routing_s")) if r.get("routing_s") is not None else "-"
        rows.append(markdown_row(
            r["preset"], f"{r['seconds']:g}", f"{r['ratio']:g}", r["method"], f"{meas:.2f}x",
            "-" if cpu is None else f"{cpu:.2f}x", f"{r.get('predicted_speedup', 0):.2f}x", f"{pred:.2f}x",
            f"{meas / pred:.2f}", routing, "-" if rs is None else f"{100 * rs:.2f}%",
        ))  # fmt: skip
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args(argv)
    records = []
    for f in a.files:
        records += json.load(open(f))
    machines = defaultdict(list)
    for r in records:
        machines[json.dumps(r.get("machine", {}), sort_keys=True)].append(r)
    for m in machines:
        print("machine:", m)
    floors = {json.dumps(r.get("floor"), sort_keys=True) for r in records if r.get("floor")}
    for f in floors:
        print("floor:", f)
    print("\n### hr_jax vs transformers\n")
    print(comparison_table(records))
    print("\n### Fraction of the machine floor\n")
    print(floor_table(records))
    print("\n### Pruning: measured vs FLOP-predicted prefill speed-up, routing overhead\n")
    print(pruning_table(records))


if __name__ == "__main__":
    main()


def format_table(records: list[dict]) -> str:
    """One line per record: the median, spread, throughput, compile time, memory, floor fraction and
    the speed-up over unpruned transformers (same seconds, stage, batch)."""
    ref = {
        (r["seconds"], r["stage"], r["batch"]): r["median_s"] for r in records if r["impl"] == "transformers"
    }
    hdr = (
        f"{'impl':12s} {'sec':>5} {'ratio':>5} {'method':10s} {'b':>2} {'stage':8s} {'median ms':>10} "
        f"{'IQR ms':>8} {'tok/s':>8} {'compile s':>9} {'mem MB':>8} {'floor%':>7} {'vs HF':>6}"
    )
    lines = [hdr, "-" * len(hdr)]
    for r in records:
        mem = r.get("xla_bytes") or r.get("device_peak_bytes") or r.get("peak_rss_delta_bytes")
        base = ref.get((r["seconds"], r["stage"], r["batch"]))
        vs = f"{base / r['median_s']:.2f}x" if base and r["impl"] == "hr_jax" else ""
        lines.append(
            f"{r['impl']:12s} {r['seconds']:>5g} {r['ratio']:>5g} {r['method']:10s} {r['batch']:>2} {r['stage']:8s} "  # noqa: E501
            f"{1e3 * r['median_s']:>10.2f} {1e3 * r['iqr_s']:>8.2f} "
            f"{(r.get('tokens_per_s') or 0):>8.1f} {(r.get('compile_s') or 0):>9.2f} "
            f"{(mem or 0) / 2**20:>8.1f} {100 * (r.get('floor_fraction') or 0):>6.1f}% {vs:>6}"
        )
    pruned = [r for r in records if r["stage"] == "prefill" and r["ratio"] > 0 and r["impl"] == "hr_jax"]
    if pruned:
        unp = {
            (r["seconds"], r["batch"]): r["median_s"]
            for r in records
            if r["stage"] == "prefill" and r["ratio"] == 0 and r["impl"] == "hr_jax"
        }
        lines += [
            "",
            f"{'sec':>5} {'ratio':>5} {'method':10s} {'b':>2} {'measured x':>10} {'IQR':>5} {'FLOP x':>7} "
            f"{'FLOP x (static)':>15} {'routing ms':>10} {'routing %':>9}",
        ]
        for r in pruned:
            u = unp.get((r["seconds"], r["batch"]))
            if r.get("speedup_median"):  # interleaved rounds (see the module docstring)
                meas, iqr = f"{r['speedup_median']:.2f}", f"{r['speedup_iqr']:.2f}"
            else:
                meas, iqr = (f"{u / r['median_s']:.2f}" if u else "-"), "-"
            rt = f"{1e3 * r['routing_s']:.3f}" if r.get("routing_s") is not None else "-"
            rs = f"{100 * r['routing_share']:.2f}" if r.get("routing_share") is not None else "-"
            lines.append(
                f"{r['seconds']:>5g} {r['ratio']:>5g} {r['method']:10s} {r['batch']:>2} {meas:>10} {iqr:>5} "
                f"{r.get('predicted_speedup', 0):>7.2f} {r.get('predicted_speedup_static', 0):>15.2f} "
                f"{rt:>10} {rs:>9}"
            )
    return "\n".join(lines)


def split_table(records: list[dict]) -> str:
    """Time to first token from waveforms, by part (ms), per (seconds, ratio, method, batch)."""
    rows = [r for r in records if r["stage"] == "ttft_split"]
    if not rows:
        return ""
    names = list(rows[0]["parts_s"])
    hdr = f"{'sec':>5} {'ratio':>5} {'b':>2} " + " ".join(f"{n:>11}" for n in names)
    hdr += f" {'sum':>9} {'public':>9} {'other':>7} {'host %':>7} {'feat 300s':>9} {'host 300s':>9}"
    lines = ["Time to first token from waveforms, by part (ms):", hdr, "-" * len(hdr)]
    for r in rows:
        p = r["parts_s"]
        host = p["features"] + p["host"] + p["transfer"] + p["first_token"]
        lines.append(
            f"{r['seconds']:>5g} {r['ratio']:>5g} {r['batch']:>2} "
            + " ".join(f"{1e3 * p[n]:>11.2f}" for n in names)
            + f" {1e3 * r['parts_sum_s']:>9.1f} {1e3 * r['median_s']:>9.1f} {1e3 * r['unaccounted_s']:>7.1f}"
            f" {100 * host / r['median_s']:>6.1f}% {1e3 * r['features_max_length_s']:>9.1f}"
            f" {1e3 * r['host_max_length_s']:>9.1f}"
        )
    return "\n".join(lines)
