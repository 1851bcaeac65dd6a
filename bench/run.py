"""Prefill / decode benchmark: hr_jax against transformers (PyTorch, sdpa) on the same weights and inputs.

    python -m bench.run --preset small --seconds 30 --ratios 0,0.6 --json out.json

For each audio length, ratio and method it measures, with warm-up, repeats, median and spread:

- `encoder`: the audio encoder alone (hr_jax: jitted `encode_audio` on the bucket-padded features;
  transformers: `get_audio_features`). Independent of the ratio: one measurement, repeated in the
  records of every (ratio, method).
- `prefill`: the LLM prefill alone, from the input embeddings (audio already spliced in) to the
  logits at the last token, KV caches built (hr_jax: `engine.core.prefill_embeds_core`, pruning included;
  transformers: the language model with `use_cache=True` + `lm_head` at the last position).
- `ttft`: time to first token from the host batch: encoder + prefill + greedy token back on the host
  (hr_jax: the public path `engine.run_prefill`; transformers: the thinker's `forward` as a user
  calls it, which computes the LM head at every position).
- `split` (hr_jax): time to first token *from waveforms*, split into features, host planning,
  transfers, encoder, prefill and first token, each timed to completion, beside the public path in
  the same rounds (`HrJaxBench.ttft_split`).
- `decode`: N decode steps (one token per row each) with the KV cache (hr_jax: the compiled
  `decode_core` loop; transformers: `generate` of N+1 greedy tokens, timed from the logits
  processor's first call to its last, i.e. over the N decode forwards).
  `tokens_per_s = batch · N / median_s`.

Pruning's prefill speed-up (`measured_speedup`) is taken from the unpruned and the pruned program
run alternately, one ratio per round (median and spread over `--repeats` rounds), so that a machine
whose speed drifts between two measurements minutes apart does not move it.

`--threads N` pins the whole process to N cores before JAX starts (XLA sizes its thread pool from
them) and gives PyTorch N threads.

Pruning exists only in hr_jax: transformers is timed unpruned, and its records carry ratio 0 and
method "none"; the table compares every hr_jax ratio with that unpruned transformers run.
Compile time (hr_jax AOT `lower().compile()`, or first call − median for the public TTFT path) is
reported separately, never mixed into the run times. Peak memory: XLA's compiled-program estimate
(arguments + outputs + temporaries) and the process RSS growth during the timed calls (host; on GPU
the devices' peak allocation). Each record also carries the machine load when it was taken, the
FLOP-model cost of its useful work and its fraction of the machine floor (`bench.flops`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
from typing import Any

# hr_jax and transformers share the accelerator in one process: JAX must not grab 75% of it upfront.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from bench import flops as F  # noqa: E402
from bench.hr_jax_bench import (  # noqa: E402
    UNPRUNED,
    HrJaxBench,
    device_peak,
    make_model,
    synth_batch,
    synth_waves,
)
from bench.presets import PRESETS, preset_config  # noqa: E402
from bench.report import format_table, split_table  # noqa: E402
from bench.timing import load_info  # noqa: E402
from bench.torch_bench import torch_bench  # noqa: E402

STAGES = ("encoder", "prefill", "ttft", "split", "decode")


# --------------------------------------------------------------------------------------------------
# Driver


def _csv(s: str, cast=str) -> list:
    return [cast(x) for x in s.split(",") if x.strip()]


def default_dtype() -> str:
    import jax

    return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def machine_info() -> dict[str, Any]:
    import jax

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_device": str(jax.devices()[0].device_kind),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cpus_pinned"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        if torch.cuda.is_available():
            info["torch_device"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        info["cpu_model"] = names[0] if names else None
    except OSError:
        pass
    return info


def _cost(
    stage: str,
    cfg,
    seconds: float,
    batch: int,
    ratio: float,
    method: str,
    m: int,
    steps: int,
    dtype_bytes: int,
) -> F.Cost:
    """The useful work of a stage (unpadded shapes), from the FLOP model."""
    sh = F.bench_shapes(seconds, cfg)
    enc = F.encoder_cost(cfg, sh.frames, batch, dtype_bytes)
    probe = ratio > 0 and method not in (UNPRUNED, "frame", "random")
    kept = sh.kept(ratio) if ratio > 0 else None
    pre = F.prefill_cost(
        cfg.text,
        sh.seq,
        kept,
        m,
        sh.n_text_after,
        sh.n_audio,
        batch,
        probe=probe,
        attention="causal",
        dtype_bytes=dtype_bytes,
    )
    if stage == "encoder":
        return enc
    if stage == "prefill":
        return pre
    if stage in ("ttft", "ttft_split"):
        return enc + pre
    lo = sh.seq + steps // 2  # mean cache fill over the decode steps
    up = (kept if kept is not None else sh.seq) + steps // 2
    return F.decode_cost(cfg.text, batch, lo, up, m, dtype_bytes).scale(steps)


def _attention_count(dtype: str) -> str:
    """How `bench.flops` should count hr_jax's prefill attention on this platform."""
    import jax.numpy as jnp

    from models.attention import resolve_attention

    impl = resolve_attention("auto", jnp.dtype(dtype))
    return impl if impl in ("blocked", "dense", "streaming") else "causal"


def run_bench(a: argparse.Namespace) -> list[dict]:
    import jax

    cfg = preset_config(a.preset)
    dtype = a.dtype or default_dtype()
    dtype_bytes = 2 if "16" in dtype else 4
    impls = _csv(a.impl)
    for i in impls:
        if i not in ("hr_jax", "transformers"):
            raise SystemExit(f"unknown --impl {i!r}")
    seconds, ratios, methods = _csv(a.seconds, float), _csv(a.ratios, float), _csv(a.methods)
    dec_batches, pre_batches = _csv(a.batch, int), _csv(a.prefill_batch, int)
    stages = _csv(a.stages)
    for st in stages:
        if st not in STAGES:
            raise SystemExit(f"unknown stage {st!r}; choose from {', '.join(STAGES)}")
    floor = None
    if not a.no_floor:
        print(f"[bench] measuring the machine floor ({dtype}) ...", file=sys.stderr)
        floor = F.machine_floor(dtype, a.peak_flops, a.peak_bw)
        print(
            f"[bench] floor: {floor.flops_per_s / 1e9:.1f} GFLOP/s, {floor.bytes_per_s / 1e9:.1f} GB/s",
            file=sys.stderr,
        )
    model = make_model(cfg, a.preset, dtype)
    combos = [(0.0, UNPRUNED)] if 0.0 in ratios else []
    combos += [(r, m) for r in ratios if r > 0 for m in methods]
    records: list[dict] = []
    info = machine_info()

    def emit(impl, stage, s, r, method, b, res, extra=None):
        rec = {
            "impl": impl,
            "preset": a.preset,
            "seconds": s,
            "ratio": r,
            "method": method,
            "stage": stage,
            "batch": b,
            "dtype": dtype,
            **res,
            **(extra or {}),
            **load_info(),
        }
        if stage == "decode":
            rec["tokens_per_s"] = b * res["steps"] / res["median_s"] if res["median_s"] > 0 else None
            rec["ms_per_step"] = 1e3 * res["median_s"] / res["steps"]
        else:
            rec.setdefault("tokens_per_s", None)
        cost = _cost(stage, cfg, s, b, r, method, a.prune_layer, a.decode_tokens, dtype_bytes)
        rec["flops"], rec["bytes"] = cost.flops, cost.bytes
        if floor is not None:
            rec["floor_s"] = floor.time(cost)
            rec["floor_fraction"] = rec["floor_s"] / res["median_s"] if res["median_s"] > 0 else None
        records.append(rec)
        tps = f" {rec['tokens_per_s']:.1f} tok/s" if rec.get("tokens_per_s") else ""
        print(
            f"[bench] {impl:12s} {s:g}s r={r:g} {method:10s} b={b} {stage:8s} "
            f"{1e3 * res['median_s']:9.2f} ms{tps}",
            file=sys.stderr,
        )

    if "hr_jax" in impls:
        hb = HrJaxBench(model, a.prune_layer)
        for s in seconds:
            for b in pre_batches:
                batch = synth_batch(cfg, s, b)
                enc = hb.encoder(batch, a.repeats, a.warmup) if "encoder" in stages else None
                for r, method in combos:
                    if enc is not None:
                        emit(
                            "hr_jax",
                            "encoder",
                            s,
                            r,
                            method,
                            b,
                            enc,
                            {"note": "ratio-independent; one measurement"},
                        )
                    if "ttft" in stages:
                        emit(
                            "hr_jax",
                            "ttft",
                            s,
                            r,
                            method,
                            b,
                            hb.ttft(batch, r, method, a.decode_tokens, a.repeats, a.warmup),
                        )
                    if "split" in stages:
                        waves = synth_waves(s, b)
                        split = hb.ttft_split(waves, batch, r, method, a.decode_tokens, a.repeats, a.warmup)
                        emit("hr_jax", "ttft_split", s, r, method, b, split)
                    if "prefill" not in stages:
                        continue
                    pre = hb.prefill(batch, r, method, a.repeats, a.warmup)
                    extra = {}
                    if r > 0:
                        sh = F.bench_shapes(s, cfg)
                        probe = method not in ("frame", "random")
                        # Ideal: useful shapes, causal attention. Static: the bucket-padded shapes
                        # hr_jax runs, attention counted as its implementation computes it.
                        extra["predicted_speedup"] = F.predicted_speedup(
                            cfg.text,
                            sh.seq,
                            sh.kept(r),
                            a.prune_layer,
                            F.TEXT_AFTER_AUDIO,
                            sh.n_audio,
                            probe,
                            attention="causal",
                        )
                        extra["predicted_speedup_static"] = F.predicted_speedup(
                            cfg.text,
                            pre["seq_computed"],
                            pre["kept_computed"],
                            a.prune_layer,
                            F.TEXT_AFTER_AUDIO,
                            sh.n_audio,
                            probe,
                            attention=_attention_count(dtype),
                        )
                        extra.update(hb.prefill_speedup(batch, r, method, a.repeats, a.warmup))
                        if a.routing:
                            rt = hb.routing(batch, r, method, a.repeats, a.warmup)
                            extra["routing_s"] = rt["median_s"]
                            extra["routing_iqr_s"] = rt["iqr_s"]
                            extra["routing_share"] = rt["median_s"] / pre["median_s"]
                    emit("hr_jax", "prefill", s, r, method, b, pre, extra)
            for b in dec_batches if "decode" in stages else []:
                batch = synth_batch(cfg, s, b)
                for r, method in combos:
                    res = hb.decode(batch, r, method, a.decode_tokens, a.repeats, a.warmup)
                    emit("hr_jax", "decode", s, r, method, b, res)
        # ttft of the unpruned path and peaks on an accelerator
        peak = device_peak()
        if peak is not None:
            for rec in records:
                rec.setdefault("device_peak_bytes_process", peak)

    if "transformers" in impls:
        with tempfile.TemporaryDirectory(prefix="hr_jax_bench_hf_") as tmp:
            tb = torch_bench(model, dtype, tmp)
            for s in seconds:
                for b in pre_batches:
                    batch = synth_batch(cfg, s, b)
                    for stage in ("encoder", "prefill", "ttft"):
                        if stage in stages:
                            emit(
                                "transformers",
                                stage,
                                s,
                                0.0,
                                UNPRUNED,
                                b,
                                getattr(tb, stage)(batch, a.repeats, a.warmup),
                            )
                for b in dec_batches if "decode" in stages else []:
                    batch = synth_batch(cfg, s, b)
                    res = tb.decode(batch, a.decode_tokens, a.repeats, a.warmup)
                    emit("transformers", "decode", s, 0.0, UNPRUNED, b, res)
    for rec in records:
        rec["machine"] = info
        if floor is not None:
            rec["floor"] = floor.to_dict()
    del jax
    return records


def pin_threads(n: int) -> None:
    """Pins this process to its first `n` allowed cores and PyTorch to `n` threads. Call it before JAX
    creates its CPU client (XLA sizes its thread pool from the cores the process may run on)."""
    allowed = sorted(os.sched_getaffinity(0))
    if not 1 <= n <= len(allowed):
        raise SystemExit(f"--threads {n}: this process may use {len(allowed)} cores")
    os.sched_setaffinity(0, allowed[:n])
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small", choices=PRESETS)
    ap.add_argument("--seconds", default="30", help="audio lengths, comma list")
    ap.add_argument("--ratios", default="0,0.6", help="pruning ratios, comma list")
    ap.add_argument("--methods", default="headrouter", help="pruning methods for ratios > 0, comma list")
    ap.add_argument("--batch", default="1,4", help="decode batch sizes, comma list")
    ap.add_argument("--prefill-batch", default="1", help="batch sizes of the encoder/prefill/ttft stages")
    ap.add_argument("--decode-tokens", type=int, default=32, help="decode steps timed")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--impl", default="hr_jax,transformers")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"subset of {','.join(STAGES)}")
    ap.add_argument("--dtype", default=None, help="float32 (CPU default) or bfloat16 (accelerator default)")
    ap.add_argument("--prune-layer", type=int, default=2)
    ap.add_argument(
        "--no-routing",
        dest="routing",
        action="store_false",
        help="skip timing the selection step in isolation",
    )
    ap.add_argument("--peak-flops", type=float, default=None)
    ap.add_argument("--peak-bw", type=float, default=None)
    ap.add_argument("--no-floor", action="store_true", help="skip the machine-floor microbenchmark")
    ap.add_argument("--threads", type=int, default=None, help="pin to this many cores (default: all)")
    ap.add_argument("--json", default=None, help="write the JSON list of records here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    a = parse_args(argv)
    if a.threads is not None:
        pin_threads(a.threads)
    records = run_bench(a)
    print(format_table(records))
    split = split_table(records)
    if split:
        print("\n" + split)
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(
                records,
                f,
                indent=1,
                default=lambda o: dataclasses.asdict(o) if dataclasses.is_dataclass(o) else str(o),
            )
        os.replace(tmp, a.json)
    return records


if __name__ == "__main__":
    main()
