"""hr_jax's side of the benchmark: each stage jitted and compiled ahead of time, timed on the same
inputs as transformers' side (`bench.torch_bench`)."""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from bench import flops as F
from bench.timing import measure, summarize
from hr_jax.batch import Batch
from hr_jax.engine import PruningSpec, prepare, run_prefill
from hr_jax.engine.core import decode_core, decode_weights_core, prefill_core, prefill_embeds_core
from hr_jax.engine.planning import pad_to_buckets, place_plan, plan_batch, resolve_router
from hr_jax.model import Model
from hr_jax.pruning import VANILLA, LayerView, select_tokens
from models.family import family_of
from models.language_model import positions_from_mask
from models.params import init_params

UNPRUNED = "none"  # the unpruned rows' `method` in the benchmark's JSON (as since its first release)


def engine_method(method: str) -> str:
    """The engine's name of a benchmark method."""
    return VANILLA if method == UNPRUNED else method


# --------------------------------------------------------------------------------------------------
# Inputs and models


class _BenchTokenizer:
    """Stands in for a tokenizer: the benchmark feeds token ids directly and never decodes text."""

    pad_token_id = 0
    eos_token_id = 1

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return ""


def synth_batch(cfg, seconds: float, batch: int, seed: int = 0):
    """A `hr_jax.Batch` laid out like a chat prompt: `TEXT_BEFORE_AUDIO` text tokens, the family's
    audio markers around one audio token per audio token of `seconds`, `TEXT_AFTER_AUDIO` text
    tokens (random ids below the special tokens, all rows the same length), and the family's own
    features of a synthetic clip (`synth_waves`)."""
    family = family_of(cfg)
    sh = F.bench_shapes(seconds, cfg)
    before, after = family.audio_markers(cfg)
    rng = np.random.default_rng(seed)
    hi = min(cfg.audio_token_id, *before, *after, cfg.text.vocab_size) - 16
    audio = np.full(sh.n_audio, cfg.audio_token_id)
    rows = [np.concatenate([rng.integers(2, hi, F.TEXT_BEFORE_AUDIO), before, audio, after,
                            rng.integers(2, hi, F.TEXT_AFTER_AUDIO)]) for _ in range(batch)]  # fmt: skip
    ids = np.stack(rows).astype(np.int32)
    front_end = family.feature_extractor(None, cfg)  # long audio on purpose: nothing is cut
    feats, fmask = front_end(synth_waves(seconds, batch, seed), padding="longest", truncation=False)
    return Batch(ids, np.ones_like(ids), feats, fmask.astype(np.int32))


def synth_waves(seconds: float, batch: int, seed: int = 0) -> list[np.ndarray]:
    """`batch` 16 kHz waveforms of `seconds` (noise with a moving tone: a front end's input, content
    irrelevant to timing)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * 16000))
    t = np.arange(n) / 16000
    tone = 0.3 * np.sin(2 * np.pi * (220 + 50 * np.sin(0.5 * t)) * t)
    return [(tone + 0.05 * rng.standard_normal(n)).astype(np.float32) for _ in range(batch)]


def make_model(cfg, preset: str, dtype: str, seed: int = 0):
    params = init_params(cfg, jax.random.key(seed), dtype)
    fe = family_of(cfg).feature_extractor(None, cfg)
    return Model(
        params=params,
        config=cfg,
        tokenizer=_BenchTokenizer(),
        feature_extractor=fe,
        name=preset,
        stop_ids=(),
    )


# --------------------------------------------------------------------------------------------------
# hr_jax


def aot(fn, *args, **kw):
    """Lowers and compiles `fn` for these arguments; returns (compiled, compile seconds, XLA bytes)."""
    t0 = time.perf_counter()
    compiled = fn.lower(*args, **kw).compile()
    dt = time.perf_counter() - t0
    mem = None
    try:
        m = compiled.memory_analysis()
        mem = int(
            m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
        )
    except Exception:  # noqa: BLE001 - not every backend reports it
        pass
    return compiled, dt, mem


def device_peak() -> int | None:
    """Peak bytes allocated on the first device (None where the backend does not say)."""
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001
        return None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


class HrJaxBench:
    def __init__(self, model: Model, prune_layer: int):
        self.model, self.cfg, self.m = model, model.config, prune_layer
        self.router, _ = resolve_router(
            model, PruningSpec(method="headrouter", prune_layer=prune_layer), warn=False
        )
        family = family_of(self.cfg)
        self._embed = jax.jit(family.embed_inputs, static_argnums=1)
        self._encode = family.encode_audio

    def spec(self, ratio: float, method: str) -> PruningSpec:
        return PruningSpec(ratio, engine_method(method), self.router, self.m)

    def encoder(self, batch: Batch, repeats: int, warmup: int) -> dict:
        padded = pad_to_buckets(self.model, batch)
        cfg, encode = self.cfg, self._encode
        fn = jax.jit(lambda p, f, n: encode(p, cfg, f, n)[0])
        feats = jnp.asarray(padded.input_features)
        n = jnp.asarray(padded.feature_attention_mask.sum(1).astype(np.int32))
        compiled, cs, mem = aot(fn, self.model.params, feats, n)
        params = self.model.params
        res = measure(
            lambda _: compiled(params, feats, n).block_until_ready(), repeats=repeats, warmup=warmup
        )
        return dict(res, compile_s=cs, xla_bytes=mem, frames_computed=int(padded.input_features.shape[2]))

    def _prepared(self, batch: Batch, ratio: float, method: str, cache_extra: int = 0):
        """The engine's own planning of the batch, and its input embeddings (audio spliced in)."""
        p = prepare(self.model, batch, self.spec(ratio, method), cache_extra)
        x = p.inputs
        h = self._embed(p.params, self.cfg, x.input_ids, x.input_features, x.feature_attention_mask)
        return p, h, (x.input_ids, x.attention_mask, x.keep_k, p.router, p.key)

    def prefill(self, batch: Batch, ratio: float, method: str, repeats: int, warmup: int) -> dict:
        p, h, args = self._prepared(batch, ratio, method)
        params = p.params
        compiled, cs, mem = aot(prefill_embeds_core, params, self.cfg, p.plan, h, *args)
        res = measure(
            lambda _: compiled(params, h, *args).logits.block_until_ready(), repeats=repeats, warmup=warmup
        )
        sel = p.plan.selection
        return dict(
            res,
            compile_s=cs,
            xla_bytes=mem,
            seq_computed=int(p.inputs.input_ids.shape[1]),
            kept_computed=int(p.inputs.input_ids.shape[1]) if sel is None else sel.keep_len,
            plan_method=UNPRUNED if sel is None else sel.method,
        )

    def routing(self, batch: Batch, ratio: float, method: str, repeats: int, warmup: int) -> dict:
        """The selection step alone (probe + routing + pre-filter + top-k for HeadRouter methods),
        jitted in isolation on layer M−1's input — the routing overhead."""
        p, h, args = self._prepared(batch, ratio, method)
        cfg, text, m, spec = self.cfg, self.cfg.text, p.plan.prune_layer, p.plan.selection

        def step(params, h, ids, mask, keep_k, router, key):
            valid = mask.astype(bool)
            is_audio = (ids == cfg.audio_token_id) & valid
            keys = jnp.zeros(h.shape[:2] + (text.num_key_value_heads, text.head_dim), h.dtype)
            view = LayerView(jax.tree.map(lambda w: w[m - 1], params.layers), h, h, keys, params.norm)
            pos = positions_from_mask(mask)
            return select_tokens(spec, text, view, is_audio, valid, pos, keep_k, router, key).kept

        params = p.params
        compiled, cs, _ = aot(jax.jit(step), params, h, *args)
        res = measure(
            lambda _: compiled(params, h, *args).block_until_ready(), repeats=repeats, warmup=warmup
        )
        return dict(res, compile_s=cs)

    def ttft(self, batch: Batch, ratio: float, method: str, steps: int, repeats: int, warmup: int) -> dict:
        """As `generate_batch` up to its first token: the prefill allocates the decode cache."""
        spec = self.spec(ratio, method)

        def run(_):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                state, _ = run_prefill(self.model, batch, spec, steps + 1)
            return np.asarray(jnp.argmax(state.logits, axis=-1))

        before = prefill_core._cache_size()
        res = measure(run, repeats=repeats, warmup=max(warmup, 1))
        compiled = prefill_core._cache_size() - before  # at most 1 (the warm-up); more = recompiles
        return dict(
            res,
            compile_s=max(0.0, res["first_call_s"] - res["median_s"]),
            compile_how="first call - median",
            compiles_during_runs=max(0, compiled - 1),
        )

    def ttft_split(
        self,
        waves: list[np.ndarray],
        batch: Batch,
        ratio: float,
        method: str,
        steps: int,
        repeats: int,
        warmup: int,
    ) -> dict:
        """Time to first token from waveforms, split into what runs where, each part timed to completion:

        - `features`: the log-mel front end (host; `padding="longest"`, as `make_batch` runs it);
        - `host`: bucketing and planning (`plan_batch`);
        - `transfer`: inputs, router arrays and key onto the device (`place_plan`);
        - `encoder`: the audio encoder with the audio spliced into the embeddings (one jitted program);
        - `prefill`: the decoder prefill with pruning and the decode cache (`prefill_embeds_core`);
        - `first_token`: greedy argmax and the token back on the host.

        The record's time (`median_s`) is the public path, timed in the same rounds: features, then
        `run_prefill` (one program for encoder and prefill) and the token on the host; `unaccounted_s`
        is that minus the parts' sum. `features_max_length_s` / `host_max_length_s`: the same two host
        parts with the reference processor's padding (300 s for Qwen), showing what padding costs.
        """
        spec, cfg, model = self.spec(ratio, method), self.cfg, self.model
        fe, extra = model.feature_extractor, steps + 1
        ids, mask = batch.input_ids, batch.attention_mask

        def parts() -> dict[str, float]:
            t = {}
            t0 = time.perf_counter()
            feats, fmask = fe(waves, "longest")
            t["features"] = (t1 := time.perf_counter()) - t0
            host = plan_batch(model, Batch(ids, mask, feats, fmask), spec, extra)
            t["host"] = (t0 := time.perf_counter()) - t1
            p = place_plan(model, host, spec)
            jax.block_until_ready((p.inputs, p.router, p.key))
            t["transfer"] = (t1 := time.perf_counter()) - t0
            x = p.inputs
            h = self._embed(
                p.params, cfg, x.input_ids, x.input_features, x.feature_attention_mask
            ).block_until_ready()
            t["encoder"] = (t0 := time.perf_counter()) - t1
            state = prefill_embeds_core(
                p.params, cfg, p.plan, h, x.input_ids, x.attention_mask, x.keep_k, p.router, p.key
            )
            jax.block_until_ready(state)
            t["prefill"] = (t1 := time.perf_counter()) - t0
            np.asarray(jnp.argmax(state.logits, axis=-1))
            t["first_token"] = time.perf_counter() - t1
            return t

        def public() -> float:
            t0 = time.perf_counter()
            feats, fmask = fe(waves, "longest")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                state, _ = run_prefill(model, Batch(ids, mask, feats, fmask), spec, extra)
            np.asarray(jnp.argmax(state.logits, axis=-1))
            return time.perf_counter() - t0

        def padded_host() -> tuple[float, float]:
            t0 = time.perf_counter()
            feats, fmask = fe(waves, "max_length")
            t1 = time.perf_counter()
            plan_batch(model, Batch(ids, mask, feats, fmask), spec, extra)
            return t1 - t0, time.perf_counter() - t1

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(max(warmup, 1)):  # compiles both forms
                parts(), public()
            rounds, totals, padded = [], [], []
            for _ in range(repeats):  # interleaved, so drift of the machine hits both alike
                rounds.append(parts())
                totals.append(public())
                padded.append(padded_host())
        names = list(rounds[0])
        med = {n: float(np.median([r[n] for r in rounds])) for n in names}
        res = summarize(totals)
        return dict(
            res,
            parts_s=med,
            parts_iqr_s={n: summarize([r[n] for r in rounds])["iqr_s"] for n in names},
            parts_sum_s=float(np.median([sum(r.values()) for r in rounds])),
            unaccounted_s=res["median_s"] - sum(med.values()),
            features_max_length_s=float(np.median([p[0] for p in padded])),
            host_max_length_s=float(np.median([p[1] for p in padded])),
        )

    def prefill_speedup(self, batch: Batch, ratio: float, method: str, repeats: int, warmup: int) -> dict:
        """Pruning's prefill speed-up, stable against a drifting machine: the unpruned and the pruned
        program (both compiled first) run alternately, in alternating order, and each round gives one
        ratio (unpruned / pruned seconds); returns their median, spread and the per-round ratios."""
        runs = []
        for r, m in ((0.0, UNPRUNED), (ratio, method)):
            p, h, args = self._prepared(batch, r, m)
            compiled, _, _ = aot(prefill_embeds_core, p.params, self.cfg, p.plan, h, *args)
            runs.append((compiled, p.params, h, args))

        def once(i: int) -> float:
            compiled, params, h, args = runs[i]
            t0 = time.perf_counter()
            compiled(params, h, *args).logits.block_until_ready()
            return time.perf_counter() - t0

        for _ in range(max(warmup, 1)):
            once(0), once(1)
        ratios = []
        for k in range(repeats):
            order = (0, 1) if k % 2 == 0 else (1, 0)
            t = {i: once(i) for i in order}
            ratios.append(t[0] / t[1])
        s = summarize(ratios)
        return {
            "speedup_median": s["median_s"],
            "speedup_iqr": s["iqr_s"],
            "speedup_min": s["min_s"],
            "speedup_max": s["max_s"],
            "speedup_rounds": s["times_s"],
        }

    def decode(self, batch: Batch, ratio: float, method: str, steps: int, repeats: int, warmup: int) -> dict:
        max_new = steps + 1  # the first token comes from the prefill logits; `steps` forward passes follow
        spec = self.spec(ratio, method)
        key = jax.random.key(0)

        def setup():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                state, _ = run_prefill(self.model, batch, spec, max_new)
            jax.block_until_ready(state)
            return (state,)

        (state,) = setup()
        kw = dict(max_new=max_new, temperature=0.0, top_p=1.0, stop_ids=(), pad_id=0)
        params = self.model.params
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
            weights = decode_weights_core(params, self.cfg, state.cache.prune_layer, state.logits.shape[0])
            compiled, cs, mem = aot(decode_core, params, self.cfg, state, key, weights, **kw)

            def run(arg):
                # the weights' layout is per generate call: timed with the loop, as a user meets it
                w = decode_weights_core(params, self.cfg, arg[0].cache.prune_layer, arg[0].logits.shape[0])
                tokens, count = compiled(params, arg[0], key, w)
                return np.asarray(tokens)

            res = measure(run, setup=setup, repeats=repeats, warmup=warmup)
        return dict(
            res,
            compile_s=cs,
            xla_bytes=mem,
            steps=steps,
            cache_lower_slots=int(state.cache.lower.capacity),
            cache_upper_slots=int(state.cache.upper.capacity),
        )
