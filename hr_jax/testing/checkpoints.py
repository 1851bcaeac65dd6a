"""Tiny random Qwen2.5-Omni thinker checkpoints in the Hugging Face layout, for tests.

`tiny_config` gives a small thinker `config.json` dict; `build_tiny_checkpoint` instantiates
`transformers.Qwen2_5OmniThinkerForConditionalGeneration` from it with a fixed seed and writes a
checkpoint directory like the released ones (safetensors, optionally sharded with an index, optionally
wrapped as a full Omni checkpoint with `thinker.`/`talker.`/`token2wav.` keys, plus tokenizer,
chat template, preprocessor and generation config). `load_reference` loads it back in PyTorch.
`build_random_checkpoint` writes the same layout without PyTorch (hr_jax's own random weights).
Nothing is cached globally: every call writes what it is asked to.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hr_jax.tokenizer import build_tokenizer
from models.qwen2_5_omni.presets import (  # noqa: F401 - the fixtures' configs, importable from here
    RELEASED_AUDIO,
    RELEASED_FIRST_SPECIAL_ID,
    RELEASED_WIDTHS,
    TINY_VOCAB_SIZE,
    released_config,
    tiny_config,
)

# Small English corpus the tiny tokenizer is trained on (enough text for 242 BPE merges).
TINY_CORPUS = """\
You are a helpful assistant. Listen to the audio and answer the question.
What is the speaker saying? Transcribe the audio. Describe the sound you hear.
Is the speaker a man or a woman? What emotion does the speaker express?
Which instrument is playing in this recording? How many people are talking?
The quick brown fox jumps over the lazy dog while the birds sing in the morning.
A short recording of rain falling on a tin roof, followed by distant thunder.
The woman speaks slowly and clearly about the history of the old city and its river.
The man laughs and then asks his friend whether they should take the train or the bus.
Music plays softly in the background as a crowd applauds at the end of the concert.
Please choose the correct answer from the options below and reply with the letter only.
Option A: a dog barking. Option B: a car engine. Option C: a baby crying. Option D: a door closing.
The answer is B. The answer is A. The answer is D. The answer is C.
Speech recognition turns spoken words into text; audio understanding goes further and reasons
about speakers, emotions, sounds, music and the scene in which a recording was made.
Long audio contains many tokens, so pruning the less important ones makes the model faster
without hurting the accuracy of its answers on semantic and acoustic questions.
Attention heads look at different parts of the input: some follow the meaning of the words,
others follow the pitch, the rhythm, the timbre and the loudness of the sound.
In the evening the children read books, write letters, play games and listen to stories.
She said that the weather would be warm and sunny tomorrow, with a light wind from the west.
He counted one, two, three, four, five, six, seven, eight, nine, ten and then started again.
The train arrives at the station at seven o'clock and leaves again ten minutes later.
Numbers such as 1, 2, 3, 10, 25, 100 and 2024 appear in dates, prices and measurements.
Good morning! How are you today? I'm fine, thank you. Let's meet at the library at noon.
The teacher explained the lesson about water, air, fire and earth to the students in class.
The engineer measured the latency of the system and wrote a report about the results.
A bell rings, footsteps echo in the hall, and somebody whistles a cheerful little tune.
"""


def _hf_config(cfg: dict[str, Any]):
    from transformers import Qwen2_5OmniThinkerConfig

    c = copy.deepcopy(cfg)
    c.pop("architectures", None)
    c.pop("model_type", None)
    return Qwen2_5OmniThinkerConfig(**c)


def _legacy_name(name: str) -> str:
    """transformers-5 module names → the names in the released checkpoints (what save_pretrained writes)."""
    for new, old in (("model.language_model.", "model."), ("model.audio_tower.", "audio_tower."),
                     ("model.visual.", "visual.")):  # fmt: skip
        if name.startswith(new):
            return old + name[len(new) :]
    return name


def _randomize_(model, seed: int) -> None:
    """Random biases and norm weights (HF inits them to 0 / 1), so parity tests exercise them."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1 and ("norm" in name or ".ln_" in name):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))


def _fake_talker_token2wav(seed: int) -> dict:
    """A few small stand-ins for the talker / token2wav tensors of a full Omni checkpoint."""
    import torch

    g = torch.Generator().manual_seed(seed + 2)
    shapes = {
        "talker.model.embed_tokens.weight": (16, 8),
        "talker.model.layers.0.self_attn.q_proj.weight": (8, 8),
        "talker.model.norm.weight": (8,),
        "talker.codec_head.weight": (16, 8),
        "talker.thinker_to_talker_proj.weight": (8, 8),
        "token2wav.code2wav_dit_model.input_embed.proj.weight": (8, 12),
        "token2wav.code2wav_bigvgan_model.conv_pre.weight": (8, 4, 3),
        "token2wav.code2wav_bigvgan_model.conv_pre.bias": (8,),
    }
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def _write_safetensors(tensors: dict, out: Path, shards: int) -> None:
    from safetensors.torch import save_file

    keys = sorted(tensors)
    if shards <= 1:
        save_file({k: tensors[k].contiguous() for k in keys}, str(out / "model.safetensors"),
                  metadata={"format": "pt"})  # fmt: skip
        return
    shards = min(shards, len(keys))
    per = -(-len(keys) // shards)
    weight_map, total = {}, 0
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: tensors[k].contiguous() for k in keys[s * per : (s + 1) * per]}
        save_file(part, str(out / name), metadata={"format": "pt"})
        for k, t in part.items():
            weight_map[k] = name
            total += t.numel() * t.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def build_tiny_checkpoint(
    out_dir: str | Path,
    config_overrides: dict[str, Any] | None = None,
    seed: int = 0,
    omni_wrapper: bool = False,
    shards: int = 1,
    extra_tensors: bool = True,
    writer: str = "files",
) -> Path:
    """Writes a random tiny Qwen2.5-Omni thinker checkpoint directory and returns its path.

    `omni_wrapper`: full-Omni layout (`thinker.` key prefix, a few `talker.*`/`token2wav.*` tensors,
    config.json with `thinker_config` nested and model_type "qwen2_5_omni").
    `shards` > 1: that many safetensors files plus `model.safetensors.index.json`.
    `extra_tensors`: keep the vision tower's `visual.*` tensors (and, with `omni_wrapper`, the
    talker/token2wav ones) that a converter has to skip; False writes only the thinker's
    audio + text tensors. Tied embeddings (`tie_word_embeddings=True`) omit `lm_head.weight`, as
    transformers does.
    `writer`: "files" writes the tensors itself (every option above); "save_pretrained" lets
    transformers write them (released tensor names) and "save_pretrained_new_names" with
    `save_original_format=False` (transformers-5 module names): real files, thinker-only, unsharded
    unless transformers shards them, `extra_tensors` ignored.
    """
    if writer not in ("files", "save_pretrained", "save_pretrained_new_names"):
        raise ValueError(f"unknown writer {writer!r}")
    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config(**(config_overrides or {}))
    hf_cfg = _hf_config(cfg)
    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(hf_cfg).eval()
    _randomize_(model, seed)

    first_special = (config_overrides or {}).get("first_special_id")
    if writer != "files":
        model.save_pretrained(out, save_original_format=writer == "save_pretrained")
        del model
        _write_tokenizer_files(out, cfg, first_special)
        return out

    tie = cfg["tie_word_embeddings"]
    tensors = {}
    for name, t in model.state_dict().items():
        name = _legacy_name(name)
        if tie and name == "lm_head.weight":
            continue
        if not extra_tensors and name.startswith("visual."):
            continue
        tensors[name] = t.detach().clone()

    config_json = hf_cfg.to_dict()
    config_json["architectures"] = ["Qwen2_5OmniThinkerForConditionalGeneration"]
    config_json["model_type"] = "qwen2_5_omni_thinker"
    if omni_wrapper:
        tensors = {"thinker." + k: v for k, v in tensors.items()}
        if extra_tensors:
            tensors.update(_fake_talker_token2wav(seed))
        config_json = {
            "architectures": ["Qwen2_5OmniModel"],
            "model_type": "qwen2_5_omni",
            "enable_audio_output": True,
            "thinker_config": config_json,
            "talker_config": {
                "model_type": "qwen2_5_omni_talker",
                "hidden_size": 8,
                "audio_token_index": cfg["audio_token_index"],
                "audio_start_token_id": cfg["audio_start_token_id"],
                "audio_end_token_id": cfg["audio_end_token_id"],
            },
            "token2wav_config": {"model_type": "qwen2_5_omni_token2wav"},
            "dtype": "float32",
            "transformers_version": config_json.get("transformers_version"),
        }
    _write_safetensors(tensors, out, shards)
    (out / "config.json").write_text(json.dumps(config_json, indent=2, sort_keys=True) + "\n")

    _write_tokenizer_files(out, cfg, first_special)
    return out


def build_random_checkpoint(
    out_dir: str | Path, config_overrides: dict[str, Any] | None = None, seed: int = 0
) -> Path:
    """A random tiny thinker checkpoint in the Hugging Face layout, written without PyTorch.

    The weights come from hr_jax's own declaration (`models.params.init_params`) and are written by
    `hr_jax.checkpoint.export_hf`, with the same config, tokenizer and preprocessor files as
    `build_tiny_checkpoint`. It needs only the runtime dependencies, so `hr-jax demo --random` runs
    on a bare install (`build_tiny_checkpoint` needs the test extra's torch).
    """
    import jax

    from hr_jax.checkpoint import export_hf
    from models.params import init_params
    from models.qwen2_5_omni.hf_config import config_from_hf

    out = Path(out_dir)
    cfg_json = tiny_config(**(config_overrides or {}))
    cfg = config_from_hf(cfg_json)
    export_hf(init_params(cfg, jax.random.key(seed)), cfg, out, base_config=cfg_json)
    _write_tokenizer_files(out, cfg_json, (config_overrides or {}).get("first_special_id"))
    return out


def _write_tokenizer_files(out: Path, cfg: dict[str, Any], first_special: int | None) -> None:
    vocab = TINY_VOCAB_SIZE if first_special is not None else cfg["text_config"]["vocab_size"]
    ids = build_tokenizer(TINY_CORPUS.splitlines(), vocab, out, first_special_id=first_special)
    gen = {
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
        "pad_token_id": ids["<|endoftext|>"],
        "do_sample": False,
    }
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")


def load_reference(ckpt_dir: str | Path):
    """The checkpoint as `Qwen2_5OmniThinkerForConditionalGeneration` (float32, eval, eager attention).

    Works for thinker-only and full-Omni layouts; raises if any thinker weight is missing from the
    files (the vision tower excepted when it was left out).
    """
    import torch
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    ckpt_dir = Path(ckpt_dir)
    cfg = json.loads((ckpt_dir / "config.json").read_text())
    cfg = cfg.get("thinker_config", cfg)
    cfg = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "transformers_version")}
    hf_cfg = Qwen2_5OmniThinkerConfig(**cfg)
    model, info = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
        ckpt_dir, config=hf_cfg, dtype=torch.float32, attn_implementation="eager", output_loading_info=True
    )
    missing = [
        k for k in info["missing_keys"]
        if ".visual." not in f".{k}" and not (hf_cfg.tie_word_embeddings and k == "lm_head.weight")
    ]  # fmt: skip
    if missing:
        raise ValueError(f"reference model is missing weights: {missing}")
    return model.eval()
