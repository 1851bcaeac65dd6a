"""Prefill / decode benchmark: hr_jax against transformers (PyTorch, sdpa) on the same weights and inputs.

    python -m bench.run --preset small --seconds 30 --ratios 0,0.6 --json out.json

For each audio length, ratio and method it measures, with warm-up, repeats, median and spread:

- `encoder`: the audio encoder alone (hr_jax: jitted `encode_audio` on the bucket-padded features;
  transformers: `get_audio_features`). Independent of the ratio: one measurement, repeated in the
  records of every (ratio, method).
- `prefill`: the LLM prefill alone, from the input embeddings (audio already spliced in) to the
  logits at the last token, KV caches built (hr_jax: `engine.prefill_embeds_core`, pruning included;
  transformers: the language model with `use_cache=True` + `lm_head` at the last position).
- `ttft`: time to first token from the host batch: encoder + prefill + greedy token back on the host
  (hr_jax: the public path `engine.run_prefill`; transformers: the thinker's `forward` as a user
  calls it, which computes the LM head at every position).
- `decode`: N decode steps (one token per row each) with the KV cache (hr_jax: the compiled
  `decode_core` loop; transformers: `generate` of N+1 greedy tokens, timed from the logits
  processor's first call to its last, i.e. over the N decode forwards).
  `tokens_per_s = batch · N / median_s`.

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
import inspect
import json
import os
import platform
import sys
import tempfile
import warnings
from typing import Any

import numpy as np

# hr_jax and transformers share the accelerator in one process: JAX must not grab 75% of it upfront.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from bench import flops as F  # noqa: E402
from bench.presets import PRESETS, preset_config  # noqa: E402
from bench.timing import load_info, measure  # noqa: E402

STAGES = ("encoder", "prefill", "ttft", "decode")


# --------------------------------------------------------------------------------------------------
# Inputs and models


class _BenchTokenizer:
    """Stands in for a tokenizer: the benchmark feeds token ids directly and never decodes text."""

    pad_token_id = 0
    eos_token_id = 1

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return ""


def synth_batch(cfg, seconds: float, batch: int, seed: int = 0):
    """A `hr_jax.Batch` laid out like a chat prompt: `TEXT_BEFORE_AUDIO` text tokens, `<|audio_bos|>`,
    one `<|AUDIO|>` per audio token, `<|audio_eos|>`, `TEXT_AFTER_AUDIO` text tokens; random ids
    below the special tokens and random log-mel features (all rows the same length)."""
    from hr_jax.batch import Batch

    sh = F.bench_shapes(seconds)
    rng = np.random.default_rng(seed)
    hi = min(cfg.audio_token_id, cfg.audio_start_token_id, cfg.audio_end_token_id, cfg.text.vocab_size) - 16
    rows = []
    for _ in range(batch):
        pre = rng.integers(2, hi, F.TEXT_BEFORE_AUDIO)
        post = rng.integers(2, hi, F.TEXT_AFTER_AUDIO)
        rows.append(
            np.concatenate(
                [
                    pre,
                    [cfg.audio_start_token_id],
                    np.full(sh.n_audio, cfg.audio_token_id),
                    [cfg.audio_end_token_id],
                    post,
                ]
            )
        )
    ids = np.stack(rows).astype(np.int32)
    feats = (0.5 * rng.standard_normal((batch, cfg.audio.num_mel_bins, sh.frames))).astype(np.float32)
    return Batch(ids, np.ones_like(ids), feats, np.ones((batch, sh.frames), np.int32))


def make_model(cfg, preset: str, dtype: str, seed: int = 0):
    import jax

    from hr_jax.audio import FeatureConfig
    from hr_jax.model import LogMelExtractor, Model
    from models.params import init_params

    params = init_params(cfg, jax.random.key(seed), dtype)
    return Model(
        params=params,
        config=cfg,
        tokenizer=_BenchTokenizer(),
        feature_extractor=LogMelExtractor(FeatureConfig(feature_size=cfg.audio.num_mel_bins)),
        name=preset,
        stop_ids=(),
    )


# --------------------------------------------------------------------------------------------------
# hr_jax


def _aot(fn, *args, **kw):
    """Lowers and compiles `fn` for these arguments; returns (compiled, compile seconds, XLA bytes)."""
    import time

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


def _device_peak() -> int | None:
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001
        return None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


class HrJaxBench:
    def __init__(self, model, prune_layer: int):
        import jax

        from hr_jax.engine import resolve_router

        self.model, self.cfg, self.m = model, model.config, prune_layer
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.router, _ = resolve_router(model, "headrouter", None, prune_layer, warn=False)
        self.key = jax.random.key(0)
        from models.thinker import embed_inputs

        self._embed = jax.jit(embed_inputs, static_argnums=1)

    # -- shared pieces
    def _plan(self, padded, ratio: float, method: str, cache_extra: int):
        from hr_jax.engine import make_plan
        from hr_jax.selection import ROUTE_MODES

        pf = self.router.prefilter_for(method) if method in ROUTE_MODES else None
        return make_plan(self.model, padded, ratio, method, self.m, pf, cache_extra)

    def _router_arrays(self):
        from hr_jax.selection import RouterArrays

        return RouterArrays.from_router(self.router)

    def encoder(self, batch, repeats: int, warmup: int) -> dict:
        import jax
        import jax.numpy as jnp

        from hr_jax.engine import pad_to_buckets
        from models.audio_encoder import encode_audio

        padded = pad_to_buckets(self.model, batch)
        a = self.cfg.audio
        fn = jax.jit(lambda p, f, n: encode_audio(p, a, f, n)[0])
        feats = jnp.asarray(padded.input_features)
        n = jnp.asarray(padded.feature_attention_mask.sum(1).astype(np.int32))
        compiled, cs, mem = _aot(fn, self.model.params.audio, feats, n)
        params = self.model.params.audio
        res = measure(
            lambda _: compiled(params, feats, n).block_until_ready(), repeats=repeats, warmup=warmup
        )
        return dict(res, compile_s=cs, xla_bytes=mem, frames_computed=int(padded.input_features.shape[2]))

    def _prefill_args(self, padded, keep) -> tuple:
        """(input_ids, attention_mask, keep_k, router, key): what follows (params, embeddings) in the
        jitted prefill and routing steps."""
        import jax.numpy as jnp

        return (
            jnp.asarray(padded.input_ids),
            jnp.asarray(padded.attention_mask),
            jnp.asarray(keep),
            self._router_arrays(),
            self.key,
        )

    def embeds(self, padded):
        import jax.numpy as jnp

        return self._embed(
            self.model.params,
            self.cfg,
            jnp.asarray(padded.input_ids),
            jnp.asarray(padded.input_features),
            jnp.asarray(padded.feature_attention_mask),
        )

    def prefill(self, batch, ratio: float, method: str, repeats: int, warmup: int) -> dict:

        from hr_jax.engine import pad_to_buckets, prefill_embeds_core

        padded = pad_to_buckets(self.model, batch)
        plan, keep = self._plan(padded, ratio, method, 0)
        h = self.embeds(padded)
        args = self._prefill_args(padded, keep)
        params = self.model.params
        compiled, cs, mem = _aot(prefill_embeds_core, params, self.cfg, plan, h, *args)
        res = measure(
            lambda _: compiled(params, h, *args).logits.block_until_ready(), repeats=repeats, warmup=warmup
        )
        return dict(
            res,
            compile_s=cs,
            xla_bytes=mem,
            seq_computed=int(padded.input_ids.shape[1]),
            kept_computed=plan.keep_len,
            plan_method=plan.method,
        )

    def routing(self, batch, ratio: float, method: str, repeats: int, warmup: int) -> dict:
        """The selection step alone (probe + routing + pre-filter + top-k for HeadRouter methods),
        jitted in isolation on layer M−1's input — the routing overhead."""
        import jax
        import jax.numpy as jnp

        from hr_jax.engine import pad_to_buckets, selection_slots
        from hr_jax.selection import SelectionInputs, select_audio
        from models.decoder import rope_tables
        from models.thinker import positions_from_mask

        padded = pad_to_buckets(self.model, batch)
        plan, keep = self._plan(padded, ratio, method, 0)
        cfg, text = self.cfg, self.cfg.text
        m = plan.prune_layer

        def step(params, h, ids, mask, keep_k, router, key):
            valid = mask.astype(bool)
            pos = positions_from_mask(mask)
            is_audio = (ids == cfg.audio_token_id) & valid
            audio_pos, text_pos, last_real = selection_slots(is_audio, valid, plan)
            cos, sin = rope_tables(pos, text.head_dim, text.rope_theta)
            layer = jax.tree.map(lambda w: w[m - 1], params.layers)
            kv = jnp.zeros(h.shape[:2] + (text.num_key_value_heads, text.head_dim), h.dtype)
            inputs = SelectionInputs(
                layer=layer,
                h_in=h,
                h_out=h,
                keys_rope=kv,
                final_norm=params.norm,
                cos=cos,
                sin=sin,
                valid=valid,
                audio_pos=audio_pos,
                num_audio=is_audio.sum(1).astype(jnp.int32),
                text_pos=text_pos,
                last_real=last_real,
                keep_k=keep_k,
            )
            return select_audio(inputs, text, plan, router, key)[0]

        h = self.embeds(padded)
        args = self._prefill_args(padded, keep)
        params = self.model.params
        compiled, cs, _ = _aot(jax.jit(step), params, h, *args)
        res = measure(
            lambda _: compiled(params, h, *args).block_until_ready(), repeats=repeats, warmup=warmup
        )
        return dict(res, compile_s=cs)

    def ttft(self, batch, ratio: float, method: str, steps: int, repeats: int, warmup: int) -> dict:
        """As `generate_batch` up to its first token: the prefill allocates the decode cache."""
        import jax.numpy as jnp

        from hr_jax.engine import run_prefill

        def run(_):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                state, _, _ = run_prefill(
                    self.model, batch, ratio, method, self.router, self.m, 0, steps + 1, None
                )
            return np.asarray(jnp.argmax(state.logits, axis=-1))

        from hr_jax.engine import prefill_core

        before = prefill_core._cache_size()
        res = measure(run, repeats=repeats, warmup=max(warmup, 1))
        compiled = prefill_core._cache_size() - before  # at most 1 (the warm-up); more = recompiles
        return dict(
            res,
            compile_s=max(0.0, res["first_call_s"] - res["median_s"]),
            compile_how="first call - median",
            compiles_during_runs=max(0, compiled - 1),
        )

    def decode(self, batch, ratio: float, method: str, steps: int, repeats: int, warmup: int) -> dict:
        import jax

        from hr_jax.engine import decode_core, run_prefill

        max_new = steps + 1  # the first token comes from the prefill logits; `steps` forward passes follow

        def setup():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                state, plan, shift = run_prefill(
                    self.model, batch, ratio, method, self.router, self.m, 0, max_new, None
                )
            jax.block_until_ready(state)
            return state, plan, shift

        state, plan, shift = setup()
        kw = dict(
            prune_layer=plan.prune_layer, max_new=max_new, temperature=0.0, top_p=1.0, stop_ids=(), pad_id=0
        )
        if "lo_len" in inspect.signature(decode_core).parameters:  # prefill lengths of the two caches
            kw.update(lo_len=int(batch.input_ids.shape[1] + shift), up_len=int(plan.keep_len))
        params = self.model.params
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
            compiled, cs, mem = _aot(decode_core, params, self.cfg, state, self.key, **kw)

            def run(arg):
                tokens, count = compiled(params, arg[0], self.key)
                return np.asarray(tokens)

            res = measure(run, setup=setup, repeats=repeats, warmup=warmup)
        return dict(
            res,
            compile_s=cs,
            xla_bytes=mem,
            steps=steps,
            cache_lower_slots=int(state.lower.valid.shape[1]),
            cache_upper_slots=int(state.upper.valid.shape[1]),
        )


# --------------------------------------------------------------------------------------------------
# transformers


def _torch_dtype(dtype: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def _hf_base_config(cfg) -> dict:
    """Token ids transformers' position code reads even without images (the released ids for the real
    vocabularies, `hr_jax.tokenizer`'s layout for the small ones)."""
    if cfg.audio_token_id == 151646:
        ids = {
            "image_token_index": 151655,
            "video_token_index": 151656,
            "vision_start_token_id": 151652,
            "vision_end_token_id": 151653,
        }
    else:
        from hr_jax.tokenizer import special_token_ids

        sp = special_token_ids(cfg.text.vocab_size)
        ids = {
            "image_token_index": sp["<|IMAGE|>"],
            "video_token_index": sp["<|VIDEO|>"],
            "vision_start_token_id": sp["<|vision_bos|>"],
            "vision_end_token_id": sp["<|vision_eos|>"],
        }
    return dict(ids, position_id_per_seconds=25, seconds_per_chunk=2)


class TorchBench:
    def __init__(self, model, dtype: str, workdir: str):
        import torch
        import transformers
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration

        from hr_jax.checkpoint import export_hf

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()

        self.torch = torch
        self.cuda = torch.cuda.is_available()
        self.device = "cuda" if self.cuda else "cpu"
        export_hf(model.params, model.config, workdir, base_config=_hf_base_config(model.config))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = (
                Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
                    workdir, dtype=_torch_dtype(dtype), attn_implementation="sdpa"
                )
                .to(self.device)
                .eval()
            )
        self.dtype = _torch_dtype(dtype)

    def _sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def _inputs(self, batch) -> dict:
        t = self.torch
        return {
            "input_ids": t.from_numpy(batch.input_ids.astype(np.int64)).to(self.device),
            "attention_mask": t.from_numpy(batch.attention_mask.astype(np.int64)).to(self.device),
            "input_features": t.from_numpy(batch.input_features).to(self.device, self.dtype),
            "feature_attention_mask": t.from_numpy(batch.feature_attention_mask.astype(np.int64)).to(
                self.device
            ),
        }

    def _measure(self, run, setup=None, repeats=5, warmup=1) -> dict:
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()
        with self.torch.no_grad():
            res = measure(run, setup=setup, repeats=repeats, warmup=warmup)
        if self.cuda:
            res["device_peak_bytes"] = int(self.torch.cuda.max_memory_allocated())
        return res

    def encoder(self, batch, repeats: int, warmup: int) -> dict:
        x = self._inputs(batch)

        def run(_):
            out = self.model.get_audio_features(
                x["input_features"], x["feature_attention_mask"]
            ).last_hidden_state
            self._sync()
            return out

        return self._measure(run, repeats=repeats, warmup=warmup)

    def prefill(self, batch, repeats: int, warmup: int) -> dict:
        x = self._inputs(batch)
        inner = self.model.model
        with self.torch.no_grad():
            emb = inner.get_input_embeddings()(x["input_ids"])
            audio = self.model.get_audio_features(
                x["input_features"], x["feature_attention_mask"]
            ).last_hidden_state
            mask = (x["input_ids"] == self.model.config.audio_token_id).unsqueeze(-1).expand_as(emb)
            emb = emb.masked_scatter(mask, audio.to(emb.dtype))
            pos = inner.compute_3d_position_ids(
                input_ids=x["input_ids"],
                image_grid_thw=None,
                video_grid_thw=None,
                inputs_embeds=emb,
                attention_mask=x["attention_mask"],
                past_key_values=None,
                audio_feature_lengths=x["feature_attention_mask"].sum(1),
            )

        def run(_):
            out = inner.language_model(
                inputs_embeds=emb,
                attention_mask=x["attention_mask"],
                position_ids=pos,
                use_cache=True,
                return_dict=True,
            )
            logits = self.model.lm_head(out.last_hidden_state[:, -1])
            self._sync()
            return logits

        return self._measure(run, repeats=repeats, warmup=warmup)

    def ttft(self, batch, repeats: int, warmup: int) -> dict:
        def run(_):
            x = self._inputs(batch)
            out = self.model(**x, use_cache=True)
            return out.logits[:, -1].argmax(-1).tolist()

        return self._measure(run, repeats=repeats, warmup=warmup)

    def decode(self, batch, steps: int, repeats: int, warmup: int) -> dict:
        """`generate` of `steps + 1` greedy tokens; the decode time is taken between the logits
        processor's first call (right after the prefill's forward) and its last (after the
        `steps`-th decode forward), so it covers exactly `steps` decode steps."""
        import time

        from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

        x = self._inputs(batch)
        bench = self

        class Stamp(LogitsProcessor):
            def __init__(self):
                self.times = []

            def __call__(self, input_ids, scores):
                bench._sync()
                self.times.append(time.perf_counter())
                return scores

        cfg = GenerationConfig(
            max_new_tokens=steps + 1,
            min_new_tokens=steps + 1,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
            bos_token_id=None,
        )
        spans = []

        def run(_):
            stamp = Stamp()
            self.model.generate(**x, generation_config=cfg, logits_processor=LogitsProcessorList([stamp]))
            assert len(stamp.times) == steps + 1, len(stamp.times)
            spans.append(stamp.times[-1] - stamp.times[0])

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = self._measure(run, repeats=repeats, warmup=warmup)
        from bench.timing import summarize

        res.update(summarize(spans[-repeats:]))
        res["steps"] = steps
        res["how"] = "generate(N+1 tokens); time from the first to the last logits-processor call"
        return res


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
    sh = F.bench_shapes(seconds)
    enc = F.encoder_cost(cfg.audio, sh.frames, batch, dtype_bytes)
    probe = ratio > 0 and method not in ("none", "frame", "random")
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
    if stage == "ttft":
        return enc + pre
    lo = sh.seq + steps // 2  # mean cache fill over the decode steps
    up = (kept if kept is not None else sh.seq) + steps // 2
    return F.decode_cost(cfg.text, batch, lo, up, m, dtype_bytes).scale(steps)


def _attention_count(dtype: str) -> str:
    """How `bench.flops` should count hr_jax's prefill attention on this platform."""
    import jax.numpy as jnp

    from models.decoder import attention_impl

    return {"blocked": "blocked", "dense": "dense"}.get(attention_impl(jnp.dtype(dtype)), "causal")


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
    combos = [(0.0, "none")] if 0.0 in ratios else []
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
                    if "prefill" not in stages:
                        continue
                    pre = hb.prefill(batch, r, method, a.repeats, a.warmup)
                    extra = {}
                    if r > 0:
                        sh = F.bench_shapes(s)
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
        peak = _device_peak()
        if peak is not None:
            for rec in records:
                rec.setdefault("device_peak_bytes_process", peak)

    if "transformers" in impls:
        with tempfile.TemporaryDirectory(prefix="hr_jax_bench_hf_") as tmp:
            tb = TorchBench(model, dtype, tmp)
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
                                "none",
                                b,
                                getattr(tb, stage)(batch, a.repeats, a.warmup),
                            )
                for b in dec_batches if "decode" in stages else []:
                    batch = synth_batch(cfg, s, b)
                    res = tb.decode(batch, a.decode_tokens, a.repeats, a.warmup)
                    emit("transformers", "decode", s, 0.0, "none", b, res)
    for rec in records:
        rec["machine"] = info
        if floor is not None:
            rec["floor"] = floor.to_dict()
    del jax
    return records


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
            f"{'sec':>5} {'ratio':>5} {'method':10s} {'b':>2} {'measured x':>10} {'FLOP x':>7} "
            f"{'FLOP x (static)':>15} {'routing ms':>10} {'routing %':>9}",
        ]
        for r in pruned:
            u = unp.get((r["seconds"], r["batch"]))
            meas = f"{u / r['median_s']:.2f}" if u else "-"
            rt = f"{1e3 * r['routing_s']:.3f}" if r.get("routing_s") is not None else "-"
            rs = f"{100 * r['routing_share']:.2f}" if r.get("routing_share") is not None else "-"
            lines.append(
                f"{r['seconds']:>5g} {r['ratio']:>5g} {r['method']:10s} {r['batch']:>2} {meas:>10} "
                f"{r.get('predicted_speedup', 0):>7.2f} {r.get('predicted_speedup_static', 0):>15.2f} "
                f"{rt:>10} {rs:>9}"
            )
    return "\n".join(lines)


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
    ap.add_argument("--stages", default=",".join(STAGES), help="subset of encoder,prefill,ttft,decode")
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
    ap.add_argument("--json", default=None, help="write the JSON list of records here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    a = parse_args(argv)
    records = run_bench(a)
    print(format_table(records))
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
