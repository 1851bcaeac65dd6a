"""transformers' side of the benchmark: the same weights (exported through `hr_jax.checkpoint.export_hf`)
and inputs, timed stage by stage like `bench.hr_jax_bench`."""

from __future__ import annotations

import time
import warnings

import numpy as np

from bench.timing import measure, summarize
from hr_jax.checkpoint import export_hf
from hr_jax.tokenizer import special_token_ids


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

    def sync(self) -> None:
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

    def _audio(self, x):
        """The audio encoder's output tokens for the inputs `x` (`_inputs`)."""
        return self.model.get_audio_features(
            x["input_features"], x["feature_attention_mask"]
        ).last_hidden_state

    def encoder(self, batch, repeats: int, warmup: int) -> dict:
        x = self._inputs(batch)

        def run(_):
            out = self._audio(x)
            self.sync()
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
            self.sync()
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
        from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

        x = self._inputs(batch)
        bench = self

        class Stamp(LogitsProcessor):
            def __init__(self):
                self.times = []

            def __call__(self, input_ids, scores):
                bench.sync()
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
        res.update(summarize(spans[-repeats:]))
        res["steps"] = steps
        res["how"] = "generate(N+1 tokens); time from the first to the last logits-processor call"
        return res


class Phi4TorchBench(TorchBench):
    """transformers' `Phi4MultimodalForCausalLM` on the same weights (the speech LoRA merged, as hr_jax
    runs it; peft's unmerged adapter would only add work), same stages."""

    def __init__(self, model, dtype: str, workdir: str):
        import torch
        import transformers
        from transformers import Phi4MultimodalConfig, Phi4MultimodalForCausalLM

        from models.phi4mm.hf_export import native_config, native_state_dict

        transformers.logging.set_verbosity_error()
        self.torch = torch
        self.cuda = torch.cuda.is_available()
        self.device = "cuda" if self.cuda else "cpu"
        self.dtype = _torch_dtype(dtype)
        cfg = Phi4MultimodalConfig(**native_config(model.config))
        cfg._attn_implementation = "sdpa"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = Phi4MultimodalForCausalLM(cfg)
            state = {k: torch.from_numpy(v) for k, v in native_state_dict(model.params, model.config).items()}
            missing, unexpected = net.load_state_dict(state, strict=False)
        unused = [k for k in missing if "image_embed" not in k and "_for_vision_speech" not in k]
        if unused or unexpected:  # pragma: no cover - guards the export table
            raise RuntimeError(f"weights not transferred to transformers: {unused[:3]} {unexpected[:3]}")
        self.model = net.to(self.device, self.dtype).eval()

    def _inputs(self, batch) -> dict:
        t = self.torch
        frames = int(batch.feature_attention_mask.sum(1).max())
        return {
            "input_ids": t.from_numpy(batch.input_ids.astype(np.int64)).to(self.device),
            "attention_mask": t.from_numpy(batch.attention_mask.astype(np.int64)).to(self.device),
            "audio_input_features": t.from_numpy(batch.input_features.transpose(0, 2, 1).copy()).to(
                self.device, self.dtype
            ),
            "audio_embed_sizes": t.full((batch.input_ids.shape[0],), -(-frames // 8), device=self.device),
        }

    def _audio(self, x):
        emb = self.model.model.embed_tokens_extend.audio_embed
        h = emb.encoder(x["audio_input_features"], None)
        return emb.down_proj_for_speech(self.torch.nn.functional.gelu(emb.up_proj_for_speech(h)))

    def prefill(self, batch, repeats: int, warmup: int) -> dict:
        x = self._inputs(batch)
        inner = self.model.model
        with self.torch.no_grad():
            emb = inner.embed_tokens(x["input_ids"])
            emb = inner.embed_tokens_extend(
                x["input_ids"], emb, audio_input_features=x["audio_input_features"],
                audio_embed_sizes=x["audio_embed_sizes"],
            )  # fmt: skip

        def run(_):
            out = inner(inputs_embeds=emb, attention_mask=x["attention_mask"], use_cache=True)
            logits = self.model.lm_head(out.last_hidden_state[:, -1])
            self.sync()
            return logits

        return self._measure(run, repeats=repeats, warmup=warmup)


# family name -> transformers' side of the benchmark for it (the reference model it runs).
TORCH_BENCHES: dict[str, type[TorchBench]] = {"qwen2_5_omni": TorchBench, "phi4mm": Phi4TorchBench}


def torch_bench(model, dtype: str, workdir: str) -> TorchBench:
    """transformers' side for the model's family."""
    family = model.config.family
    if family not in TORCH_BENCHES:
        raise ValueError(f"no transformers reference for model family {family!r} in bench.torch_bench")
    return TORCH_BENCHES[family](model, dtype, workdir)
