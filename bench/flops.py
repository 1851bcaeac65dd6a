"""FLOP and byte model of the thinker's three stages, the machine floor, and pruning predictions.

Counting rules (one multiply-add = 2 FLOPs; elementwise work, norms, softmax and RoPE are ignored
except in the HeadRouter probe, where they are counted because the probe is nothing else):

- Audio encoder, over `frames` mel frames cut into windows of `2·n_window` frames (the last one
  partial): conv1 (k3, stride 1) `2·frames·3·mel·d`; conv2 (k3, stride 2) `2·t·3·d²` with `t` conv
  frames; per layer `t·(8d² + 4df)` for q/k/v/o and fc1/fc2 plus windowed attention
  `Σ_w 4·t_w²·d` (QKᵀ and PV, `t_w` frames of window w); the projection `2·(t/2)·d·out`.
- Phi-4's Conformer encoder over `t = ceil(frames / 8)` subsampled frames: the NeMo subsampling
  (a full 3x3 conv to C channels, then depthwise 3x3 + pointwise C² pairs, then a linear of
  `C·mel'` to d), per block `t·(8d² + 12df)` for q/k/v/o and the two gated half-step FFNs, the conv
  module `t·(8d² + 2dk)` and attention `4·t_c²·d` per 500-frame chunk; the projection
  `2t·d·D + 2t·D²`.
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
from models.phi4mm.config import MAX_ENCODER_FRAMES, ConformerConfig
from models.qwen2_5_omni.config import AudioConfig, ThinkerConfig

MEL_FRAMES_PER_SECOND = 100
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


def encoder_params(a: AudioConfig) -> int:
    d, f = a.d_model, a.encoder_ffn_dim
    layer = 4 * d * d + 3 * d + 2 * d * f + f + d + 4 * d  # q,k,v,o (+q,v,o bias), fc1/fc2, 2 LayerNorms
    return (
        3 * a.num_mel_bins * d
        + d
        + 3 * d * d
        + d
        + a.encoder_layers * layer
        + 2 * d
        + d * a.output_dim
        + a.output_dim
    )


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


def conformer_params(a: ConformerConfig, out_dim: int) -> int:
    d, f, c, k = a.hidden_size, a.intermediate_size, a.nemo_conv_channels, a.kernel_size
    ffn = 2 * d + 2 * d * f + 2 * f + f * d + d
    block = (
        2 * ffn + 4 * (d * d + d) + 3 * 2 * d + (2 * d * d + 2 * d + 2 * d) + (k * d + d) + 2 * (d * d + d)
    )
    pairs = a.num_subsampling_convs - 1
    sub = 9 * c + c + pairs * (9 * c + c + c * c + c) + c * a.subsampled_mel * d + d
    return sub + a.num_blocks * block + d * out_dim + out_dim + out_dim * out_dim + out_dim


def conformer_cost(
    a: ConformerConfig, out_dim: int, frames: int, batch: int = 1, dtype_bytes: int = 4
) -> Cost:
    """Phi-4's Conformer encoder and projection over `frames` feature frames per row."""
    d, f, c, k = a.hidden_size, a.intermediate_size, a.nemo_conv_channels, a.kernel_size
    t_, mel = frames, a.input_size
    fl = 0.0
    for stage in range(a.num_subsampling_convs):
        t_, mel = (t_ - 1) // 2 + 1, (mel - 1) // 2 + 1
        fl += 2 * t_ * mel * 9 * c  # the full 1 -> C conv, then depthwise convs: 9 taps per channel
        if stage:
            fl += 2 * t_ * mel * c * c  # pointwise
    t = t_
    fl += 2 * t * c * a.subsampled_mel * d
    chunks = [min(MAX_ENCODER_FRAMES, t - s) for s in range(0, t, MAX_ENCODER_FRAMES)] if t else []
    per_block = (
        t * (8 * d * d + 12 * d * f) + t * (8 * d * d + 2 * d * k) + sum(4 * n * n * d for n in chunks)
    )
    fl += a.num_blocks * per_block + 2 * t * d * out_dim + 2 * t * out_dim * out_dim
    return Cost(batch * fl, conformer_params(a, out_dim) * dtype_bytes + batch * frames * a.input_size * 4)


def encoder_cost(a, frames: int, batch: int = 1, dtype_bytes: int = 4, out_dim: int | None = None) -> Cost:
    """Audio encoder over `frames` mel frames per row (pass the padded count for what a static-shape
    implementation computes, the valid count for the useful work). Phi-4's Conformer
    (`ConformerConfig`) needs the decoder width `out_dim`."""
    if isinstance(a, ConformerConfig):
        return conformer_cost(a, out_dim or a.hidden_size, frames, batch, dtype_bytes)
    d, f, win = a.d_model, a.encoder_ffn_dim, a.window_frames
    windows = [min(win, frames - s) for s in range(0, frames, win)]
    conv_t = [(w - 1) // 2 + 1 for w in windows]  # conv2 frames per window
    t = sum(conv_t)
    fl = 2 * frames * 3 * a.num_mel_bins * d + 2 * t * 3 * d * d
    per_layer = t * (8 * d * d + 4 * d * f) + sum(4 * tw * tw * d for tw in conv_t)
    fl += a.encoder_layers * per_layer
    fl += 2 * (t // 2) * d * a.output_dim
    return Cost(batch * fl, encoder_params(a) * dtype_bytes + batch * frames * a.num_mel_bins * 4)


ATTENTION_COUNTS = ("dense", "causal", "blocked")


def attention_flops(t: TextConfig, n: int, kv: int, attention: str = "dense") -> float:
    """Score and value products of `n` queries over `kv` keys. `dense`: the full matrix (a masked
    dense kernel); `causal`: only the lower triangle (the useful work; what flash kernels compute, up
    to their tile size); `blocked`: what `models.decoder`'s blocked CPU path computes (each query
    block against the key prefix it can see)."""
    hq, hd = t.num_attention_heads, t.head_dim
    if attention == "dense" or n != kv:
        return 4 * n * kv * hq * hd
    if attention == "causal":
        return 2 * n * (n + 1) * hq * hd
    if attention == "blocked":
        from models.decoder import attention_blocks

        return sum(4 * (e - s) * e * hq * hd for s, e in attention_blocks(n))
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
    """Shapes of one benchmark row of `seconds` of audio for `cfg`'s family (default Qwen2.5-Omni:
    25 audio tokens a second between `<|audio_bos|>` / `<|audio_eos|>`; Phi-4: 12.5, no markers)."""
    if isinstance(cfg, ThinkerConfig) or cfg is None:
        frames = int(round(seconds * MEL_FRAMES_PER_SECOND))
        from models.qwen2_5_omni.config import num_audio_tokens

        na = num_audio_tokens(frames)
        return Shapes(frames, na, TEXT_BEFORE_AUDIO + 2 + na + TEXT_AFTER_AUDIO, TEXT_AFTER_AUDIO)
    samples = int(round(seconds * 16000))
    frames = max(0, (samples - 400) // 160 + 1)
    na = int(family_of(cfg).num_audio_tokens(cfg, frames))
    return Shapes(frames, na, TEXT_BEFORE_AUDIO + na + TEXT_AFTER_AUDIO, TEXT_AFTER_AUDIO)


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
        enc = encoder_cost(cfg.audio, sh.frames, batch, dtype_bytes, cfg.text.hidden_size)
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
