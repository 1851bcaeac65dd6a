"""What defines a training run: the model (a `ThinkerConfig`, the demo model's by default), the
optimiser and the data stream. Saved as `<out>/train_config.json`; a resume must match it."""

from __future__ import annotations

import dataclasses
from typing import Any

from hr_jax.checkpoint import hf_config_dict
from hr_jax.tokenizer import special_token_ids
from models.config import AudioConfig, TextConfig, ThinkerConfig

SEQ_MULTIPLE = 32  # sequence length rounding (tokens)
FRAME_MULTIPLE = 400  # mel-frame bucket: two encoder windows of the released n_window=100
TEXT_CAP = 160  # non-audio tokens (system prompt, instruction, reply) a bucket leaves room for
TARGET_SLOTS = 16  # reply tokens (incl. <|im_end|>) scored per row; longer replies are truncated
PROMPT_STYLES = ("synth", "eval")


def demo_model(text: dict[str, Any] | None = None, audio: dict[str, Any] | None = None) -> ThinkerConfig:
    """The shipped demo model's architecture (exactly the Qwen2.5-Omni thinker's, small), with `text` /
    `audio` overriding `TextConfig` / `AudioConfig` fields. The audio projection follows the text
    width, and the special tokens sit at the end of the vocabulary (`hr_jax.tokenizer`)."""
    t = TextConfig(
        vocab_size=768, hidden_size=256, intermediate_size=640, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=2, head_dim=32, rope_theta=1000000.0, max_position_embeddings=32768,
    )  # fmt: skip
    t = dataclasses.replace(t, **(text or {}))
    a = AudioConfig(
        d_model=128, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=512, n_window=100
    )
    a = dataclasses.replace(a, output_dim=t.hidden_size, **(audio or {}))
    ids = special_token_ids(t.vocab_size)
    return ThinkerConfig(
        audio=a,
        text=t,
        audio_token_id=ids["<|AUDIO|>"],
        audio_start_token_id=ids["<|audio_bos|>"],
        audio_end_token_id=ids["<|audio_eos|>"],
    )


# Flat model fields of train_config.json files written before the model became a ThinkerConfig.
_LEGACY_TEXT = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "rope_theta", "max_position_embeddings")  # fmt: skip
_LEGACY_AUDIO = {
    "audio_d_model": "d_model",
    "audio_layers": "encoder_layers",
    "audio_heads": "encoder_attention_heads",
    "audio_ffn": "encoder_ffn_dim",
    "n_window": "n_window",
}


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run."""

    model: ThinkerConfig = dataclasses.field(default_factory=demo_model)
    # optimisation
    steps: int = 400
    batch_size: int = 16
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 30
    weight_decay: float = 0.05
    clip_norm: float = 1.0
    init_seed: int = 0
    # data
    data_seed: int = 1234
    min_seconds: float = 4.0
    max_seconds: float = 12.0
    tasks: tuple[str, ...] = ()  # () = all of hr_jax.synth.TASK_NAMES
    group: int = 4  # batches rendered, sorted by length and bucketed together
    # bookkeeping
    save_every: int = 50
    log_every: int = 1

    @property
    def vocab_size(self) -> int:
        return self.model.text.vocab_size

    def task_names(self) -> tuple[str, ...]:
        from hr_jax.synth import TASK_NAMES

        return tuple(self.tasks) or TASK_NAMES

    def hf_config(self) -> dict[str, Any]:
        """The Hugging Face thinker `config.json` dict of the model, with the tokenizer's special ids."""
        ids = special_token_ids(self.vocab_size)
        base = {
            "text_config": {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
                            "pad_token_id": ids["<|endoftext|>"]},
            "image_token_index": ids["<|IMAGE|>"], "video_token_index": ids["<|VIDEO|>"],
            "vision_start_token_id": ids["<|vision_bos|>"], "vision_end_token_id": ids["<|vision_eos|>"],
            "position_id_per_seconds": 25, "seconds_per_chunk": 2,
        }  # fmt: skip
        return hf_config_dict(self.model, base)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        d["tasks"] = list(self.tasks)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["tasks"] = tuple(d.get("tasks", ()))
        if "model" in d:
            d["model"] = ThinkerConfig.from_dict(d["model"])
        else:  # a run saved with flat model fields
            text = {k: d.pop(k) for k in _LEGACY_TEXT if k in d}
            audio = {new: d.pop(old) for old, new in _LEGACY_AUDIO.items() if old in d}
            d["model"] = demo_model(text, audio)
        return cls(**d)
