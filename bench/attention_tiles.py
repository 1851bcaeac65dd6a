"""The streaming attention's tiles, measured on the real shapes of CPU prefill, against PyTorch's kernel.

    python -m bench.attention_tiles --preset small --seconds 30,120,300 --tiles 128x256,256x512,512x512 \
        [--torch] [--json FILE]

For each length (the bucketed sequence of `--seconds` of audio for the preset: its query and KV heads)
and each `QxK` tile pair, the median time of one layer's causal self-attention by
`models.attention.streaming_attention`, its GFLOP/s (the causal lower triangle: 2·L·(L+1)·Hq·hd), and
the temporary bytes XLA's compiled-program analysis reports; with `--torch`, PyTorch's
`scaled_dot_product_attention(is_causal=True, enable_gqa=True)` on the same tensors in the same run.
Rounds are interleaved so that machine drift hits every variant alike.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from bench.timing import summarize, write_json


def _tiles(text: str) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in t.split("x")) for t in text.split(",") if t]  # type: ignore[misc]


def _variants(q, k, v, valid, tiles: list[tuple[int, int]], with_torch: bool) -> tuple[dict, dict]:
    """{name: a call to time} and {name: XLA's temporary bytes} of each variant on these tensors."""
    import jax

    from models.attention import streaming_attention

    runs: dict[str, Any] = {}
    temps: dict[str, int] = {}
    for tq, tk in tiles:
        fn = jax.jit(lambda q, k, v, m, tq=tq, tk=tk: streaming_attention(q, k, v, m, tq, tk))
        compiled = fn.lower(q, k, v, valid).compile()
        temps[f"{tq}x{tk}"] = int(compiled.memory_analysis().temp_size_in_bytes)
        runs[f"{tq}x{tk}"] = lambda c=compiled: jax.block_until_ready(c(q, k, v, valid))
    if with_torch:
        import torch

        tq_, tk_, tv_ = (torch.from_numpy(np.asarray(x)).transpose(1, 2) for x in (q, k, v))
        sdpa = torch.nn.functional.scaled_dot_product_attention
        runs["torch sdpa"] = lambda: sdpa(tq_, tk_, tv_, is_causal=True, enable_gqa=True)
    for fn in runs.values():
        fn()  # warm up
    return runs, temps


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small", help="a name of `bench.presets`")
    ap.add_argument("--seconds", default="30,120,300", help="seconds of audio, comma-separated")
    ap.add_argument("--json", default=None, help="write the records here")
    ap.add_argument("--tiles", default="128x256,256x512,512x512,256x1024")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--torch", action="store_true", help="also time PyTorch's fused CPU kernel")
    a = ap.parse_args(argv)

    import time

    import jax.numpy as jnp

    from bench import flops as F
    from bench.presets import preset_config
    from hr_jax.engine.buckets import SEQ_MULTIPLE, bucket

    t = preset_config(a.preset).text
    records: list[dict[str, Any]] = []
    for seconds in (float(s) for s in a.seconds.split(",")):
        n = bucket(F.bench_shapes(seconds, preset_config(a.preset)).seq, SEQ_MULTIPLE)
        rng = np.random.default_rng(0)
        heads = (t.num_attention_heads, t.num_key_value_heads, t.num_key_value_heads)
        q, k, v = (jnp.asarray(rng.standard_normal((1, n, h, t.head_dim), np.float32)) for h in heads)
        runs, temps = _variants(q, k, v, jnp.ones((1, n), bool), _tiles(a.tiles), a.torch)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(a.rounds):
            for name, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        flops = 2.0 * n * (n + 1) * t.num_attention_heads * t.head_dim
        for name, ts in times.items():
            stats = summarize(ts)
            rate = flops / stats["median_s"] / 1e9
            records.append({"seconds": seconds, "tokens": n, "variant": name, "flops": flops,
                            "gflops_per_s": rate, "temp_bytes": temps.get(name), **stats})  # fmt: skip
            mb = "-" if name not in temps else f"{temps[name] / 2**20:.0f} MiB"
            print(f"{seconds:6g}s L={n:6d} {name:12s} {1e3 * stats['median_s']:9.1f} ms "
                  f"(IQR {1e3 * stats['iqr_s']:6.1f})  {rate:6.1f} GFLOP/s  temp {mb}")  # fmt: skip
    write_json(a.json, records)
    return records


if __name__ == "__main__":
    main()
