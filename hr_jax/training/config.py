"""What defines a training run: the model (a `ThinkerConfig`, the demo model's by default), the
optimiser and the data stream. Saved as `<out>/train_config.json`; a resume must match it."""

from __future__ import annotations

import dataclasses
from typing import Any

from models.config import TextConfig
from models.qwen2_5_omni.config import AudioConfig, ThinkerConfig
from models.qwen2_5_omni.hf_config import hf_config_dict
from models.qwen2_5_omni.prompt import special_token_ids

SEQ_MULTIPLE = 32  # sequence length rounding (tokens)
FRAME_MULTIPLE = 400  # mel-frame bucket: two encoder windows of the released n_window=100
TEXT_CAP = 160  # non-audio tokens (system prompt, instruction, reply) a bucket leaves room for
CTC_SLOTS = 64  # spoken-word tokens a row's CTC target holds; longer transcripts are truncated
PROMPT_STYLES = ("synth", "eval")
# A `tasks` entry drawing `hr_jax.synth.utterances` clips; outside stage "encoder" each asks for a
# transcript (the reading curriculum: the reply is exactly the words spoken).
SPEECH_CLIPS = "speech"
# What a step trains: "encoder" the audio encoder alone through its training heads (CTC over the words,
# class per audio token), the decoder not run; "decoder" the whole model on replies, the encoder at
# `encoder_lr_scale` of the learning rate (0: frozen); "joint" everything on every loss.
TRAIN_STAGES = ("encoder", "decoder", "joint")


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


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of the curriculum: `steps` steps of `batch_size` clips of `min_seconds`..`max_seconds`."""

    steps: int
    min_seconds: float
    max_seconds: float
    batch_size: int
    first_step: int = 0  # where the stage starts
    first_example: int = 0  # index of its first clip in the stream


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run.

    Objective: the reply cross-entropy, plus `label_weight` times the per-audio-token classification
    loss and `ctc_weight` times the CTC loss of the spoken words (heads on the audio encoder's output
    that exist only in training, `hr_jax.training.labels`). Instead of the task's question, a share
    `describe_prob` of the examples asks to describe the clip and a share `transcribe_prob` to
    transcribe all its speech; `target_slots` reply tokens are scored.

    Stage: `stage` (one of `TRAIN_STAGES`) says which parts train on which losses; a staged recipe is
    one run per stage, each started `--init-from` the previous run. The audio encoder learns at
    `encoder_lr_scale` times the learning rate (its output projection belongs to the decoder side).
    Every `eval_every` steps the run scores a fixed held-out set (`eval_seed`, `eval_clips` clips) and
    logs it: CTC word accuracy and per-token class accuracy in stage "encoder", else reply exact match.

    Data: example `i` is a fresh clip, or with `clip_pool` N the clip of example `i mod N` (with a
    `--cache-dir` each is rendered once: rendering, not the step, limits a small model's training).

    Curriculum: `curriculum` lists stages `(steps, min_seconds, max_seconds, batch_size)` run in order
    (their steps sum to `steps`, each a multiple of `group`); without it, one stage of `steps` steps
    of `batch_size` clips of `min_seconds`..`max_seconds`.
    """

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
    clip_pool: int = 0  # 0: every example a fresh clip; N: example i is example i mod N's clip
    curriculum: tuple[tuple[int, float, float, int], ...] = ()
    # what trains
    stage: str = "joint"
    encoder_lr_scale: float = 1.0
    # objective
    describe_prob: float = 0.3
    transcribe_prob: float = 0.0
    target_slots: int = 48
    label_weight: float = 0.5
    ctc_weight: float = 0.3
    # bookkeeping
    save_every: int = 50
    log_every: int = 1
    eval_every: int = 0  # 0: no held-out scoring during the run
    eval_seed: int = 5678  # the dev split's seed
    eval_clips: int = 96

    def __post_init__(self) -> None:
        if self.stage not in TRAIN_STAGES:
            raise ValueError(f"stage={self.stage!r}; one of {TRAIN_STAGES}")
        if not 0.0 <= self.encoder_lr_scale:
            raise ValueError(f"encoder_lr_scale={self.encoder_lr_scale} must be >= 0")
        if self.clip_pool and (self.clip_pool < 0 or self.clip_pool % len(self.task_names())):
            raise ValueError(
                f"clip_pool={self.clip_pool} must be a positive multiple of the {len(self.task_names())} "
                "tasks listed (each task keeps its own clips)"
            )
        if self.stage == "encoder" and self.encoder_lr_scale == 0.0:
            raise ValueError("stage 'encoder' with encoder_lr_scale=0 trains nothing")
        if not (
            0.0 <= self.describe_prob
            and 0.0 <= self.transcribe_prob
            and self.describe_prob + self.transcribe_prob <= 1.0
        ):
            raise ValueError(
                f"describe_prob={self.describe_prob} and transcribe_prob={self.transcribe_prob} must be "
                ">= 0 and sum to at most 1"
            )

    @property
    def vocab_size(self) -> int:
        return self.model.text.vocab_size

    def stages(self) -> tuple[Stage, ...]:
        """The curriculum's stages, with where each starts."""
        raw = self.curriculum or ((self.steps, self.min_seconds, self.max_seconds, self.batch_size),)
        out, step, example = [], 0, 0
        for steps, lo, hi, bs in raw:
            if steps % self.group:
                raise ValueError(f"curriculum stage of {steps} steps is not a multiple of group={self.group}")
            out.append(Stage(int(steps), float(lo), float(hi), int(bs), step, example))
            step, example = step + steps, example + steps * bs
        if step != self.steps:
            raise ValueError(f"the curriculum's stages sum to {step} steps, the run has {self.steps}")
        return tuple(out)

    def stage_at(self, step: int) -> Stage:
        """The stage that step `step` (0-based) belongs to."""
        stages = self.stages()
        return next((s for s in stages if s.first_step <= step < s.first_step + s.steps), stages[-1])

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
        d["curriculum"] = [list(c) for c in self.curriculum]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["tasks"] = tuple(d.get("tasks", ()))
        d["curriculum"] = tuple(tuple(c) for c in d.get("curriculum", ()))
        if "model" in d:
            d["model"] = ThinkerConfig.from_dict(d["model"])
        else:  # a run saved with flat model fields
            text = {k: d.pop(k) for k in _LEGACY_TEXT if k in d}
            audio = {new: d.pop(old) for old, new in _LEGACY_AUDIO.items() if old in d}
            d["model"] = demo_model(text, audio)
            # the first recipe: answers only, 16 reply slots, no dense heads
            d.update(describe_prob=0.0, target_slots=16, label_weight=0.0, ctc_weight=0.0)
        return cls(**d)
