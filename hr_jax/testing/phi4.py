"""Tiny random Phi-4-Multimodal checkpoints in both released layouts, built with transformers and peft
(test dependencies), for the converter and the parity tests.

`build_tiny_phi4(out, layout="native")` writes what the transformers-native revision ships: a
`save_pretrained` directory (`model_type` "phi4_multimodal") plus a PEFT speech adapter in
`speech-lora/`. `layout="remote"` writes the same weights as the remote-code main branch stores them:
`….base_layer.weight` with `lora_A/lora_B.{speech,vision}` beside them, the encoder's remote names,
`audio_projection.{speech,vision}.{0,2}`, and a `phi4mm` config.json with `audio_processor`,
`embd_layer` and `speech_lora` blocks. Both carry a tiny byte-level BPE tokenizer with Phi-4's chat
tokens, `generation_config.json` and `preprocessor_config.json`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hr_jax.testing.checkpoints import TINY_CORPUS

SPECIAL = (
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
    "<|endoftext10|>",
    "<|endoftext11|>",
)
BPE_SIZE = 490  # learned tokens; the special tokens follow (ids 490..496)
AUDIO_TOKEN_ID = BPE_SIZE + SPECIAL.index("<|endoftext11|>")
LORA_TARGETS = r"model\.layers\.\d+\.(self_attn\.(qkv|o)_proj|mlp\.(gate_up|down)_proj)"
LORA_R, LORA_ALPHA = 4, 8.0
TINY_LONGROPE_SWITCH = 1024  # positions where the tiny model's LongRoPE turns from short to long factors


def tiny_phi4_config(**overrides: Any) -> dict[str, Any]:
    """transformers `Phi4MultimodalConfig` kwargs of a tiny model: hidden 64, 3 layers, 4 query / 2 KV
    heads of 16 (rotary 12: partial 0.75), LongRoPE switching at `TINY_LONGROPE_SWITCH` positions (the
    released model's 4096 scaled down, so that tests cross it with short prompts), tied head, vocab 512;
    a 2-block Conformer of width 32 (4 heads, 16 subsampling channels, bias distance 20)."""
    audio = {
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_blocks": 2,
        "num_attention_heads": 4,
        "nemo_conv_channels": 16,
        "bias_max_distance": 20,
        "audio_token_id": AUDIO_TOKEN_ID,
        "ext_pw_out_channel": 32,
        "depthwise_separable_out_channel": 32,
    }
    audio.update(overrides.pop("audio_config", {}))
    cfg = {
        "vocab_size": 512,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 16384,
        "original_max_position_embeddings": TINY_LONGROPE_SWITCH,
        "rope_parameters": {
            "rope_type": "longrope",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.75,
            "short_factor": [1.0, 1.05, 1.2, 1.5, 2.0, 3.0],
            "long_factor": [1.5, 2.5, 4.0, 6.0, 9.0, 14.0],
        },
        "tie_word_embeddings": True,
        "bos_token_id": BPE_SIZE,
        "eos_token_id": [BPE_SIZE, BPE_SIZE + 4],
        "pad_token_id": BPE_SIZE,
        "audio_config": audio,
        "vision_config": {
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
    }
    cfg.update(overrides)
    return cfg


def released_phi4_config(text_layers: int = 1, audio_blocks: int = 1) -> dict[str, Any]:
    """`tiny_phi4_config` overrides at `microsoft/Phi-4-multimodal-instruct`'s widths, depth cut: decoder
    hidden 3072, 24 query / 8 KV heads of 128, intermediate 8192, vocabulary 200,064, tied head,
    LongRoPE switching at 4096 (random factors of the right length, 48); Conformer 1024 wide, 16 heads,
    FFN 1536, 1024 subsampling channels, bias distance 500; audio token 200011. The vision tower stays
    tiny (never run)."""
    half = 48
    return tiny_phi4_config(
        vocab_size=200064,
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=text_layers,
        num_attention_heads=24,
        num_key_value_heads=8,
        max_position_embeddings=131072,
        original_max_position_embeddings=4096,
        rope_parameters={
            "rope_type": "longrope",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.75,
            "short_factor": [1.0 + 0.02 * i for i in range(half)],
            "long_factor": [1.0 + 0.5 * i for i in range(half)],
        },
        audio_config={
            "hidden_size": 1024,
            "intermediate_size": 1536,
            "num_blocks": audio_blocks,
            "num_attention_heads": 16,
            "nemo_conv_channels": 1024,
            "bias_max_distance": 500,
            "audio_token_id": 200011,
            "ext_pw_out_channel": 1024,
            "depthwise_separable_out_channel": 1024,
        },
    )


def _tokenizer(out: Path) -> None:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers.models import BPE

    tok = Tokenizer(BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\s?\w+|\s?[^\w\s]+|\s+"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_SIZE,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TINY_CORPUS.splitlines(), trainer=trainer)
    assert tok.get_vocab_size() == BPE_SIZE, tok.get_vocab_size()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 131072,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    gen = {"bos_token_id": BPE_SIZE, "eos_token_id": [BPE_SIZE, BPE_SIZE + 4], "pad_token_id": BPE_SIZE}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")


def _randomize_(model, seed: int) -> None:
    """Every parameter and buffer random (transformers inits biases, norms, the GLU biases, the global
    mean / inverse std and LoRA B to constants), so the parity tests exercise all of them."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if not p.is_floating_point() or "inv_freq" in name:
                continue
            if name.endswith("global_invstd") or (p.ndim == 1 and "norm" in name):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:  # 0.08, or transformers' scale (1 / sqrt(fan in)) for wider weights
                std = min(0.08, p.shape[-1] ** -0.5) if p.ndim >= 2 else 0.08
                p.copy_(std * torch.randn(p.shape, generator=g))


def build_reference(config: dict[str, Any] | None = None, seed: int = 0, lora: bool = True):
    """The transformers model (float32, eval, eager attention), with the speech adapter under peft when
    `lora`. Returns (model, peft model or None)."""
    import torch
    from transformers import Phi4MultimodalConfig, Phi4MultimodalForCausalLM

    torch.manual_seed(seed)
    cfg = Phi4MultimodalConfig(**(config or tiny_phi4_config()))
    cfg._attn_implementation = "eager"
    model = Phi4MultimodalForCausalLM(cfg).eval()
    _randomize_(model, seed)
    model.tie_weights()
    if not lora:
        return model, None
    from peft import LoraConfig, get_peft_model

    peft_cfg = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=LORA_TARGETS, lora_dropout=0.0)
    peft_model = get_peft_model(model, peft_cfg, adapter_name="speech").eval()
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model, peft_model


_REMOTE = (
    (r"(feed_forward_(?:in|out))\.gate_up_proj\.", r"\1.net.0.linear."),
    (r"(feed_forward_(?:in|out))\.down_proj\.", r"\1.net.2."),
    (r"(encoders\.\d+\.self_attn)\.(q|k|v)_proj\.", r"\1.linear_\2."),
    (r"(encoders\.\d+\.self_attn)\.o_proj\.", r"\1.linear_out."),
    (r"audio_embed\.up_proj_for_speech\.", "audio_embed.audio_projection.speech.0."),
    (r"audio_embed\.down_proj_for_speech\.", "audio_embed.audio_projection.speech.2."),
    (r"audio_embed\.up_proj_for_vision_speech\.", "audio_embed.audio_projection.vision.0."),
    (r"audio_embed\.down_proj_for_vision_speech\.", "audio_embed.audio_projection.vision.2."),
)


def _remote_config(cfg: dict[str, Any]) -> dict[str, Any]:
    a = cfg["audio_config"]
    out = {k: v for k, v in cfg.items() if k not in ("audio_config", "vision_config", "rope_parameters")}
    rope = cfg["rope_parameters"]
    out.update(
        {
            "model_type": "phi4mm",
            "architectures": ["Phi4MMForCausalLM"],
            "rope_scaling": {
                "type": "longrope",
                "short_factor": rope["short_factor"],
                "long_factor": rope["long_factor"],
            },
            "rope_theta": rope["rope_theta"],
            "partial_rotary_factor": rope["partial_rotary_factor"],
            "sliding_window": 262144,
            "embd_pdrop": 0.0,
            "resid_pdrop": 0.0,
            "speech_lora": {
                "r": LORA_R,
                "lora_alpha": LORA_ALPHA,
                "layer": "((layers.*self_attn\\.(qkv|o)_proj)|(layers.*mlp\\.(gate_up|down)_proj))",
                "dp": 0.01,
            },
            "vision_lora": {
                "r": LORA_R,
                "lora_alpha": LORA_ALPHA,
                "layer": "layers.*((self_attn\\.(qkv_proj|o_proj))|(mlp\\.(gate_up|down)_proj))",
                "dp": 0.0,
            },
            "embd_layer": {
                "embedding_cls": "image_audio",
                "audio_embd_layer": {
                    "compression_rate": 8,
                    "downsample_rate": 1,
                    "embedding_cls": "audio",
                    "projection_cls": "mlp",
                    "use_conv_downsample": False,
                    "use_qformer": False,
                },
                "image_embd_layer": {"crop_size": 448},
            },
            "audio_processor": {
                "name": "cascades",
                "config": {
                    "activation": "swish",
                    "attention_dim": a["hidden_size"],
                    "attention_heads": a["num_attention_heads"],
                    "batch_norm": False,
                    "bias_in_glu": True,
                    "causal": True,
                    "chunk_size": -1,
                    "cnn_layer_norm": True,
                    "conv_activation": "swish",
                    "conv_glu_type": "swish",
                    "depthwise_multiplier": 1,
                    "depthwise_seperable_out_channel": a["depthwise_separable_out_channel"],
                    "dropout_rate": 0.0,
                    "encoder_embedding_config": {"input_size": 80},
                    "ext_pw_kernel_size": 1,
                    "ext_pw_out_channel": a["ext_pw_out_channel"],
                    "input_layer": "nemo_conv",
                    "input_size": 80,
                    "kernel_size": 3,
                    "left_chunk": 18,
                    "linear_units": a["intermediate_size"],
                    "nemo_conv_settings": {"conv_channels": a["nemo_conv_channels"]},
                    "num_blocks": a["num_blocks"],
                    "relative_attention_bias_args": {
                        "t5_bias_max_distance": a["bias_max_distance"],
                        "type": "t5",
                    },
                    "time_reduction": 8,
                },
            },
        }
    )
    return out


def build_tiny_phi4(
    out_dir: str | Path, layout: str = "native", seed: int = 0, config: dict[str, Any] | None = None
) -> Path:
    """Writes a tiny random Phi-4-Multimodal checkpoint directory in `layout` ("native" or "remote") and
    returns its path. The same `seed` and `config` give the same weights in both layouts."""
    import torch
    from safetensors.torch import save_file
    from transformers import Phi4MultimodalFeatureExtractor

    if layout not in ("native", "remote"):
        raise ValueError(f"layout must be 'native' or 'remote', got {layout!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config or tiny_phi4_config()
    model, peft_model = build_reference(cfg, seed)
    adapter = {}
    for name, p in peft_model.named_parameters():
        m = re.search(r"(model\.layers\.\d+\.\w+\.\w+)\.lora_([AB])\.speech\.weight$", name)
        if m:
            adapter[(m[1], m[2])] = p.detach().clone()
    base = peft_model.unload()  # the base model again, adapters removed unmerged
    state = {
        k: v.detach().clone().contiguous() for k, v in base.state_dict().items() if k != "lm_head.weight"
    }
    if layout == "native":
        base.save_pretrained(out)
        from peft import LoraConfig, get_peft_model

        again = get_peft_model(base, LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=LORA_TARGETS))
        with torch.no_grad():
            for name, p in again.named_parameters():
                m = re.search(r"(model\.layers\.\d+\.\w+\.\w+)\.lora_([AB])\.default\.weight$", name)
                if m:
                    p.copy_(adapter[(m[1], m[2])])
        again.save_pretrained(out / "speech-lora")
        Phi4MultimodalFeatureExtractor().to_json_file(str(out / "preprocessor_config.json"))
    else:
        g = torch.Generator().manual_seed(seed + 11)
        tensors = {}
        for k, v in state.items():
            module = k.removesuffix(".weight")
            if (module, "A") in adapter:
                tensors[module + ".base_layer.weight"] = v
                tensors[module + ".lora_A.speech.weight"] = adapter[(module, "A")]
                tensors[module + ".lora_B.speech.weight"] = adapter[(module, "B")]
                tensors[module + ".lora_A.vision.weight"] = torch.randn(
                    adapter[(module, "A")].shape, generator=g
                )
                tensors[module + ".lora_B.vision.weight"] = torch.randn(
                    adapter[(module, "B")].shape, generator=g
                )
                continue
            for pattern, repl in _REMOTE:
                k = re.sub(pattern, repl, k)
            tensors[k] = v
        half = len(tensors) // 2
        keys = sorted(tensors)
        shards = {
            "model-00001-of-00002.safetensors": keys[:half],
            "model-00002-of-00002.safetensors": keys[half:],
        }
        for file, ks in shards.items():
            save_file({k: tensors[k].contiguous() for k in ks}, str(out / file))
        index = {"metadata": {}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
        (out / "config.json").write_text(json.dumps(_remote_config(cfg), indent=2) + "\n")
        pre = {
            "processor_class": "Phi4MMProcessor",
            "audio_compression_rate": 8,
            "audio_downsample_rate": 1,
            "audio_feat_stride": 1,
        }
        (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")
    _tokenizer(out)
    return out


def load_reference(ckpt_dir: str | Path, lora: bool = True):
    """A native-layout checkpoint as transformers loads it (float32, eval, eager attention), with its
    speech adapter active through peft (`PeftModel.from_pretrained(..., adapter_name="speech")`, what
    transformers' `load_adapter` does; its own wrapper wants a newer peft than the registry has)."""
    import torch
    from transformers import Phi4MultimodalForCausalLM

    model = Phi4MultimodalForCausalLM.from_pretrained(
        ckpt_dir, dtype=torch.float32, attn_implementation="eager"
    )
    if lora:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(Path(ckpt_dir) / "speech-lora"), adapter_name="speech")
    return model.eval()
