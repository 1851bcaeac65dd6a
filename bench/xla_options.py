"""The LLM prefill under XLA:CPU's dot back ends, in one process, timed in interleaved rounds.

    python -m bench.xla_options --preset small --seconds 30 --rounds 7

Each option set compiles the same `prefill_embeds_core` program (AOT, per-program compiler options,
so one process holds every variant and a drifting machine hits them alike): XLA's default (YNNPACK dot
fusions in this jaxlib), Eigen (library fusions off), XNNPACK dot fusions and oneDNN dot fusions.
Prints the median and spread per variant and its largest relative logit difference from the default.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

from bench.presets import add_shape_options
from bench.timing import summarize, write_json

YNN_OFF = {"xla_cpu_experimental_ynn_fusion_type": ""}
VARIANTS: dict[str, dict[str, str] | None] = {
    "default": None,
    "eigen": YNN_OFF,
    "xnnpack dot": {**YNN_OFF, "xla_cpu_experimental_xnn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"},
    "onednn dot": {**YNN_OFF, "xla_cpu_experimental_onednn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"},
}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_options(ap)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    from bench.hr_jax_bench import UNPRUNED, HrJaxBench, make_model, synth_batch
    from bench.presets import preset_config
    from hr_jax.engine.core import prefill_embeds_core

    cfg = preset_config(a.preset)
    bench = HrJaxBench(make_model(cfg, a.preset, "float32"), 2)
    p, h, args = bench._prepared(synth_batch(cfg, a.seconds, 1), 0.0, UNPRUNED)
    compiled = {}
    for name, options in VARIANTS.items():
        lowered = prefill_embeds_core.lower(p.params, cfg, p.plan, h, *args)
        try:
            compiled[name] = lowered.compile(compiler_options=options) if options else lowered.compile()
        except Exception as e:  # noqa: BLE001 - an option this jaxlib lacks is a result, not a crash
            print(f"[xla_options] {name}: not available ({str(e).splitlines()[0][:160]})", file=sys.stderr)
    ref = np.asarray(compiled["default"](p.params, h, *args).logits)
    times: dict[str, list[float]] = {n: [] for n in compiled}
    for name in compiled:  # warm-up
        compiled[name](p.params, h, *args).logits.block_until_ready()
    for r in range(a.rounds):
        for name in list(compiled) if r % 2 == 0 else list(compiled)[::-1]:
            t0 = time.perf_counter()
            compiled[name](p.params, h, *args).logits.block_until_ready()
            times[name].append(time.perf_counter() - t0)
    records = []
    for name, t in times.items():
        out = np.asarray(compiled[name](p.params, h, *args).logits)
        stats = summarize(t)
        med = stats["median_s"]
        rec = {
            "variant": name,
            "options": VARIANTS[name],
            "seconds": a.seconds,
            "median_s": med,
            "iqr_s": stats["iqr_s"],
            "times_s": t,
            "vs_default": float(np.median(times["default"]) / med),
            "max_rel_diff": float(np.abs(out - ref).max() / np.abs(ref).max()),
        }
        records.append(rec)
        print(
            f"{a.seconds:g}s {name:12s} {1e3 * med:8.1f} ms (IQR {1e3 * stats['iqr_s']:5.1f})  "
            f"{rec['vs_default']:.2f}x default  max rel diff {rec['max_rel_diff']:.1e}"
        )
    write_json(a.json, records)
    return records


if __name__ == "__main__":
    main()
