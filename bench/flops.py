"""FLOP and byte model of the thinker's three stages, the machine floor, and pruning predictions.

Counting rules (one multiply-add = 2 FLOPs; elementwise work, norms, softmax and RoPE are ignored
except in the HeadRouter probe, where they are counted because the probe is nothing else):

- Audio encoder and projection: each family's own count (`ModelFamily.encoder_cost`:
  `models.qwen2_5_omni.flops`, `models.phi4mm.flops`).
- Decoder layer over `n` query tokens attending to `kv` keys: projections
  `2n·D·(Hq+2Hkv)·hd + 2n·Hq·hd·D`, SwiGLU `6n·D·F`, attention `4·n·kv·Hq·hd` (`dense`: the full
  masked matrix, what transformers' sdpa computes on CPU with a mask; `causal`: the lower triangle
  only, the useful work and the floor's count; `blocked`: what
  hr_jax's blocked CPU attention computes — see `attention_flops`).
- Prefill with pruning at layer M: layers < M at L tokens, layers ≥ M at L' tokens, plus the
  HeadRouter probe (q of T text tokens, k of Na audio tokens, `T × Na` scores per query head,
  softmax/entropy ≈ 8 FLOPs per score) and the LM head at the last token of each row.
- Decode, per generated token and row: every decoder weight once (`2·params`), attention over the
  whole allocated cache (`4·S·Hq·hd` per layer), the LM head. Bytes per step: all decoder weights +
  LM head once (shared by the batch), plus each row's K and V cache (`2·S·Hkv·hd` per layer).

The floor of a stage is `max(FLOPs / peak FLOP/s, bytes / bandwidth)`; a measurement's fraction of
the floor is `floor / measured` (1.0 = at the roofline). `machine_floor()` measures this machine's
matmul FLOP/s and memory bandwidth with a jitted JAX microbenchmark (or takes peaks from flags).

CLI: `python -m bench.flops --preset small --seconds 30,120 --ratios 0.3,0.6,0.9 [--runs FILE.json]`
prints the model and the predicted pruning speed-ups, and with `--runs` (the JSON of `bench.run`)
the measured speed-ups and floor fractions next to them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time

from models.config import TextConfig
from models.family import family_of

TEXT_BEFORE_AUDIO = 40  # system prompt + chat template tokens before <|audio_bos|> (bench inputs)
TEXT_AFTER_AUDIO = 24  # instruction + template tail after <|audio_eos|> (bench inputs)


@dataclasses.dataclass(frozen=True)
class Cost:
    flops: float
    bytes: float

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.flops + other.flops, self.bytes + other.bytes)

    def scale(self, k: float) -> Cost:
        return Cost(self.flops * k, self.bytes * k)


# --------------------------------------------------------------------------------------------------
# Parameter counts


def decoder_layer_params(t: TextConfig) -> int:
    q, kv = t.num_attention_heads * t.head_dim, t.num_key_value_heads * t.head_dim
    return (
        t.hidden_size * (q + 2 * kv)
        + q
        + 2 * kv
        + q * t.hidden_size
        + 3 * t.hidden_size * t.intermediate_size
        + 2 * t.hidden_size
    )


def decode_weight_params(t: TextConfig) -> int:
    """Weights read per decode step: every decoder layer, the final norm and the LM head."""
    return t.num_hidden_layers * decoder_layer_params(t) + t.hidden_size + t.hidden_size * t.vocab_size


# --------------------------------------------------------------------------------------------------
# Stage costs


def encoder_cost(cfg, frames: int, batch: int = 1, dtype_bytes: int = 4) -> Cost:
    """The audio encoder and projection over `frames` feature frames per row, from the family's own
    count (`ModelFamily.encoder_cost`; pass the padded count for what a static-shape implementation
    computes, the valid count for the useful work). Bytes: the weights once, and the float32 features."""
    flops, params, bins = family_of(cfg).encoder_cost(cfg, frames)
    return Cost(batch * flops, params * dtype_bytes + batch * frames * bins * 4)


ATTENTION_COUNTS = ("dense", "causal", "blocked", "streaming")


def attention_flops(t: TextConfig, n: int, kv: int, attention: str = "dense") -> float:
    """Score and value products of `n` queries over `kv` keys. `dense`: the full matrix (a masked
    dense kernel); `causal`: only the lower triangle (the useful work; what flash kernels compute, up
    to their tile size); `blocked`: what `models.attention`'s blocked path computes (each query block
    against the key prefix it can see); `streaming`: what its streaming kernel computes (each query
    tile against the key tiles up to the diagonal)."""
    hq, hd = t.num_attention_heads, t.head_dim
    if attention == "dense" or n != kv:
        return 4 * n * kv * hq * hd
    if attention == "causal":
        return 2 * n * (n + 1) * hq * hd
    if attention == "blocked":
        from models.attention import attention_blocks

        return sum(4 * (e - s) * e * hq * hd for s, e in attention_blocks(n))
    if attention == "streaming":
        from models.attention import streaming_tiles

        tq, tk = streaming_tiles(n)
        tiles = sum(-(-(i + 1) * tq // tk) for i in range(-(-n // tq)))
        return 4 * tiles * tq * tk * hq * hd
    raise ValueError(f"attention count {attention!r}; choose from {ATTENTION_COUNTS}")


def decoder_layer_flops(t: TextConfig, n: int, kv: int, attention: str = "dense") -> float:
    hq, hkv, hd, dm = t.num_attention_heads, t.num_key_value_heads, t.head_dim, t.hidden_size
    proj = 2 * n * dm * (hq + 2 * hkv) * hd + 2 * n * hq * hd * dm
    mlp = 6 * n * dm * t.intermediate_size
    return proj + mlp + attention_flops(t, n, kv, attention)


def probe_flops(t: TextConfig, n_text: int, n_audio: int) -> float:
    """HeadRouter probe at layer M−1: RMSNorm'd input → q of the text tokens, k of the audio tokens,
    `T × Na` scores per query head, softmax + mean + entropy (≈ 8 FLOPs per score), top-k ignored."""
    hq, hkv, hd, dm = t.num_attention_heads, t.num_key_value_heads, t.head_dim, t.hidden_size
    return (
        2 * n_text * dm * hq * hd
        + 2 * n_audio * dm * hkv * hd
        + 2 * n_text * n_audio * hq * hd
        + 8 * n_text * n_audio * hq
    )


def prefill_cost(
    t: TextConfig,
    seq: int,
    kept: int | None = None,
    prune_layer: int = 2,
    n_text: int = 0,
    n_audio: int = 0,
    batch: int = 1,
    probe: bool = False,
    attention: str = "dense",
    dtype_bytes: int = 4,
) -> Cost:
    """LLM prefill of `seq` tokens per row; with `kept` (L'), layers ≥ `prune_layer` run on `kept`
    tokens. `probe`: add the HeadRouter probe on `n_text` × `n_audio` tokens. `attention`: how the
    score matrix is counted (`attention_flops`)."""
    n, m = t.num_hidden_layers, prune_layer
    kept = seq if kept is None else kept
    fl = m * decoder_layer_flops(t, seq, seq, attention) + (n - m) * decoder_layer_flops(
        t, kept, kept, attention
    )
    if probe:
        fl += probe_flops(t, n_text, n_audio)
    fl += 2 * t.hidden_size * t.vocab_size  # LM head at the last token
    kv_bytes = 2 * (m * seq + (n - m) * kept) * t.num_key_value_heads * t.head_dim * dtype_bytes
    weights = (n * decoder_layer_params(t) + t.hidden_size * t.vocab_size) * dtype_bytes
    return Cost(batch * fl, weights + batch * kv_bytes)


def decode_cost(
    t: TextConfig, batch: int, cache_lower: int, cache_upper: int | None = None, prune_layer: int = 2,
    dtype_bytes: int = 4,
) -> Cost:  # fmt: skip
    """One decode step (one new token per row) with caches of `cache_lower` slots (layers < M) and
    `cache_upper` slots (layers ≥ M)."""
    n, m = t.num_hidden_layers, prune_layer
    cache_upper = cache_lower if cache_upper is None else cache_upper
    slots = m * cache_lower + (n - m) * cache_upper
    hq, hkv, hd = t.num_attention_heads, t.num_key_value_heads, t.head_dim
    fl = 2 * decode_weight_params(t) + 4 * slots * hq * hd
    by = decode_weight_params(t) * dtype_bytes + batch * 2 * slots * hkv * hd * dtype_bytes
    return Cost(batch * fl, by)


# --------------------------------------------------------------------------------------------------
# Shapes of the benchmark inputs


@dataclasses.dataclass(frozen=True)
class Shapes:
    """Useful (unpadded) sizes of one benchmark row."""

    frames: int
    n_audio: int
    seq: int
    n_text_after: int

    def kept(self, ratio: float) -> int:
        return self.seq - self.n_audio + math.floor(self.n_audio * (1.0 - ratio))


def bench_shapes(seconds: float, cfg=None) -> Shapes:
    """Shapes of one benchmark row of `seconds` of audio for `cfg`'s family (default: the default
    family's `small` preset): its feature frames and audio tokens, between `TEXT_BEFORE_AUDIO` and
    `TEXT_AFTER_AUDIO` text tokens and the audio markers its prompt puts around them."""
    if cfg is None:
        from bench.presets import preset_config

        cfg = preset_config("small")
    family = family_of(cfg)
    frames = family.feature_frames(cfg, int(round(seconds * 16000)))
    na = int(family.num_audio_tokens(cfg, frames))
    before, after = family.audio_markers(cfg)
    seq = TEXT_BEFORE_AUDIO + len(before) + na + len(after) + TEXT_AFTER_AUDIO
    return Shapes(frames, na, seq, TEXT_AFTER_AUDIO)


def predicted_speedup(
    t: TextConfig,
    seq: int,
    kept: int,
    prune_layer: int,
    n_text: int,
    n_audio: int,
    probe: bool,
    attention: str = "dense",
) -> float:
    """FLOP-predicted LLM-prefill speed-up of pruning to `kept` tokens at layer M (probe included)."""
    full = prefill_cost(t, seq, None, prune_layer, attention=attention).flops
    pruned = prefill_cost(t, seq, kept, prune_layer, n_text, n_audio, probe=probe, attention=attention).flops
    return full / pruned


# --------------------------------------------------------------------------------------------------
# Machine floor


@dataclasses.dataclass(frozen=True)
class Floor:
    flops_per_s: float
    bytes_per_s: float
    dtype: str
    source: str  # "measured" or "flag"

    def time(self, cost: Cost) -> float:
        return max(cost.flops / self.flops_per_s, cost.bytes / self.bytes_per_s)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _median_time(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def measure_matmul(dtype: str = "float32", n: int | None = None, repeats: int = 5) -> float:
    """Best dense matmul FLOP/s of the default JAX device: square `n × n` jitted matmuls (the best
    of a few sizes unless `n` is given)."""
    import jax
    import jax.numpy as jnp

    gpu = jax.default_backend() != "cpu"
    sizes = [n] if n else ([4096, 8192] if gpu else [1024, 2048, 3072])
    best = 0.0
    for size in sizes:
        k1, k2 = jax.random.split(jax.random.key(size))
        a = jax.random.normal(k1, (size, size), jnp.float32).astype(dtype)
        b = jax.random.normal(k2, (size, size), jnp.float32).astype(dtype)
        f = jax.jit(lambda x, y: x @ y)
        best = max(
            best, 2 * size**3 / _median_time(lambda f=f, a=a, b=b: f(a, b).block_until_ready(), repeats)
        )
    return best


def measure_bandwidth(mbytes: int | None = None, repeats: int = 5) -> float:
    """Read bandwidth (bytes/s) of the default JAX device: the best of a jitted sum over a large
    float32 array and a matrix-vector product over it (XLA's CPU reduction runs on one thread, the
    matvec on all of them), as a decode step reads its weights."""
    import jax
    import jax.numpy as jnp

    gpu = jax.default_backend() != "cpu"
    mbytes = mbytes or (4096 if gpu else 512)
    cols = 4096
    rows = mbytes * (1 << 20) // 4 // cols
    w = jnp.ones((rows, cols), jnp.float32)
    vec = jnp.ones((cols,), jnp.float32)
    total = jax.jit(lambda m: jnp.sum(m))
    matvec = jax.jit(lambda m, v: m @ v)
    t_sum = _median_time(lambda: total(w).block_until_ready(), repeats)
    t_mv = _median_time(lambda: matvec(w, vec).block_until_ready(), repeats)
    return w.nbytes / min(t_sum, t_mv)


def machine_floor(
    dtype: str = "float32", peak_flops: float | None = None, peak_bw: float | None = None
) -> Floor:
    """The machine's matmul FLOP/s and memory bandwidth: measured unless both peaks are given."""
    src = "flag" if peak_flops and peak_bw else "measured"
    fl = peak_flops or measure_matmul(dtype)
    bw = peak_bw or measure_bandwidth()
    return Floor(float(fl), float(bw), dtype, src)


# --------------------------------------------------------------------------------------------------
# CLI


def _fmt_g(x: float) -> str:
    for unit, k in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= k:
            return f"{x / k:.2f}{unit}"
    return f"{x:.0f}"


def model_table(
    cfg,
    seconds: list[float],
    ratios: list[float],
    prune_layer: int,
    batch: int,
    dtype_bytes: int,
    floor: Floor | None,
    attention: str = "causal",
) -> list[dict]:
    rows = []
    for s in seconds:
        sh = bench_shapes(s, cfg)
        enc = encoder_cost(cfg, sh.frames, batch, dtype_bytes)
        full = prefill_cost(
            cfg.text, sh.seq, None, prune_layer, batch=batch, attention=attention, dtype_bytes=dtype_bytes
        )
        dec = decode_cost(cfg.text, batch, sh.seq, sh.seq, prune_layer, dtype_bytes)
        for r in ratios:
            kept = sh.kept(r)
            pr = prefill_cost(
                cfg.text,
                sh.seq,
                kept,
                prune_layer,
                sh.n_text_after,
                sh.n_audio,
                batch,
                probe=r > 0,
                attention=attention,
                dtype_bytes=dtype_bytes,
            )
            row = {
                "seconds": s,
                "ratio": r,
                "seq": sh.seq,
                "kept": kept,
                "n_audio": sh.n_audio,
                "encoder_flops": enc.flops,
                "prefill_flops": pr.flops,
                "prefill_flops_unpruned": full.flops,
                "probe_flops": probe_flops(cfg.text, sh.n_text_after, sh.n_audio) if r > 0 else 0.0,
                "predicted_speedup": full.flops / pr.flops,
                "decode_flops_per_step": dec.flops,
                "decode_bytes_per_step": dec.bytes,
            }
            if floor is not None:
                row.update(
                    encoder_floor_s=floor.time(enc),
                    prefill_floor_s=floor.time(pr),
                    decode_floor_s_per_step=floor.time(dec),
                )
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    from bench.presets import PRESETS, preset_config

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small", choices=PRESETS)
    ap.add_argument("--seconds", default="30,120")
    ap.add_argument("--ratios", default="0,0.3,0.6,0.9")
    ap.add_argument("--prune-layer", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--attention", default="causal", choices=ATTENTION_COUNTS, help="attention count")
    ap.add_argument("--peak-flops", type=float, default=None, help="FLOP/s (skips the matmul microbenchmark)")
    ap.add_argument(
        "--peak-bw", type=float, default=None, help="bytes/s (skips the bandwidth microbenchmark)"
    )
    ap.add_argument("--no-floor", action="store_true", help="do not measure the machine floor")
    ap.add_argument("--runs", default=None, help="JSON written by `python -m bench.run --json`")
    ap.add_argument("--json", default=None, help="write the rows here")
    a = ap.parse_args(argv)
    cfg = preset_config(a.preset)
    dtype_bytes = 2 if "16" in a.dtype else 4
    floor = None if a.no_floor else machine_floor(a.dtype, a.peak_flops, a.peak_bw)
    if floor:
        print(
            f"machine floor ({floor.source}, {floor.dtype}): {_fmt_g(floor.flops_per_s)}FLOP/s matmul, "
            f"{_fmt_g(floor.bytes_per_s)}B/s memory"
        )
    rows = model_table(
        cfg,
        [float(s) for s in a.seconds.split(",")],
        [float(r) for r in a.ratios.split(",")],
        a.prune_layer,
        a.batch,
        dtype_bytes,
        floor,
        a.attention,
    )
    measured = {}
    if a.runs:
        for rec in json.load(open(a.runs)):
            if (
                rec.get("impl") == "hr_jax"
                and rec.get("stage") == "prefill"
                and rec.get("batch", 1) == a.batch
            ):
                measured[(rec["seconds"], rec["ratio"], rec["method"])] = rec["median_s"]
    print(
        f"{'sec':>5} {'ratio':>5} {'L':>6} {'Lp':>6} {'enc FLOP':>9} {'prefill FLOP':>12} {'probe':>8} "
        f"{'pred x':>7} {'meas x':>7} {'dec B/step':>10}"
    )
    for r in rows:
        base = [v for (s, rr, _m), v in measured.items() if s == r["seconds"] and rr == 0.0]
        meas = [(m, v) for (s, rr, m), v in measured.items() if s == r["seconds"] and rr == r["ratio"]]
        mx = f"{base[0] / meas[0][1]:.2f}" if base and meas and r["ratio"] > 0 else "-"
        print(
            f"{r['seconds']:>5g} {r['ratio']:>5g} {r['seq']:>6} {r['kept']:>6} {_fmt_g(r['encoder_flops']):>9} "  # noqa: E501
            f"{_fmt_g(r['prefill_flops']):>12} {_fmt_g(r['probe_flops']):>8} {r['predicted_speedup']:>7.2f} "
            f"{mx:>7} {_fmt_g(r['decode_bytes_per_step']):>10}"
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"floor": floor.to_dict() if floor else None, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
