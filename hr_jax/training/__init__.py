"""Train a small Qwen2.5-Omni thinker on the synthetic tasks of `hr_jax.synth` (CPU-friendly).

The model is the exact thinker architecture of `models/` (audio encoder with windowed attention,
Qwen2 decoder with GQA), randomly initialised, trained with optax AdamW (linear warm-up + cosine
decay, global-norm gradient clipping). Inputs are built exactly as at inference: the chat template
of `hr_jax.prompt.prompt_ids` (default system prompt, `<|audio_bos|>`, one `<|AUDIO|>` per audio
token, `<|audio_eos|>`, instruction, generation prompt), left-padded like `hr_jax.make_batch`, log-mel
from `hr_jax.audio.extract_features`. The loss is the cross-entropy of the reply tokens and the
closing `<|im_end|>` only.

Prompts. Every example gets, with probability 1/2 each, one of the two instruction styles used
elsewhere in the repo, so the model answers whichever one evaluation uses:
`hr_jax.synth.format_prompt` (the generator's own: "... Answer with the option text only.") and
`hr_jax.eval.prompts.build_prompt` (the benchmark prompt: instruction, question, `A. ...` options,
"Answer with the option's letter ..."; ASR prompt for `digits`). The reply is always the record's
`target`: the option *text* (which `hr_jax.eval.prompts.parse_answer` maps to its letter) or the
digit transcript.

Data. Example `i` of the stream is task `tasks[i % len(tasks)]`, clip `i // len(tasks)` of the train
split (`make_example`, clips `--min-seconds`..`--max-seconds`; `--tasks` may list a task several times
to draw it more often), so every step sees fresh clips. Groups of `--group` batches are rendered
together in a background process, sorted by length and cut into batches (length bucketing: sequence
length rounded up to 64 tokens and mel frames to 400, so only a few shapes are compiled; the command
line turns on JAX's persistent compilation cache, `--compilation-cache DIR`, default `$HR_JAX_CACHE/jax`,
so a resumed run skips the compiles; `train()` itself leaves that choice to its caller). The data stream is
a pure function of (data seed, step), so a resumed run sees exactly the batches an uninterrupted one
would.

Stages. `--stage` says what a run trains: "encoder" the audio encoder alone through its training
heads (CTC over the spoken words, a class per audio token; the decoder is not run, and `--tasks` may
list "speech": short speech-only clips of `hr_jax.synth.utterances`); "decoder" the whole model on
replies with the encoder at `--encoder-lr-scale` of the learning rate (0: frozen); "joint" everything.
A staged recipe is one run per stage, each `--init-from` the previous run or its milestone
(`milestone`). `--eval-every N` scores a fixed held-out set every N steps (`heldout`) and logs it;
`--heldout SEED` scores a run's latest checkpoint on clips of an unseen seed (a gate), and
`--milestone DIR --base CKPT` writes what a passed gate commits.

Modules: `config` (the run: model, optimiser, data, stage), `data` (the stream), `objective` (losses
and training heads), `loop` (initialisation, optimiser, the resumable loop), `heldout` (held-out
scoring), `milestone` (where a run starts; what a gate commits), `export` (HF export, accuracy
check), `__main__` (the CLI).

Checkpoints. Every `--save-every` steps an orbax checkpoint of (step, params, optimizer state) is
written under `<out>/ckpt`; rerunning the same command resumes from the latest one exactly. Logs: a
JSONL line per step (`<out>/train_log.jsonl`), the loss curve `<out>/loss.png`, a tqdm bar with loss
and tokens/s.

CLI::

    python -m hr_jax.training --out runs/synth --steps 700            # train (or resume)
    python -m hr_jax.training --out runs/synth --export runs/synth/hf  # HF thinker checkpoint + tokenizer
    python -m convert.hf_to_jax --hf-dir runs/synth/hf --out hr_jax/assets/synth_model --dtype float32
    python -m hr_jax.training --accuracy hr_jax/assets/synth_model --data data/synth/test --n 30
    # staged: stage A (encoder hears), its gate on an unseen seed, its milestone; stage B from it
    python -m hr_jax.training --out runs/a --init-from hr_jax/assets/synth_model --stage encoder \
        --tasks speech,speech,digits,gender --min-seconds 1 --max-seconds 4 --eval-every 500
    python -m hr_jax.training --out runs/a --heldout 777 --n 400 \
        --milestone bench/training/stage_a --base hr_jax/assets/synth_model
    python -m hr_jax.training --out runs/b --init-from bench/training/stage_a --stage decoder \
        --encoder-lr-scale 0 --transcribe-prob 0.2
"""

from hr_jax.training.config import TrainConfig, demo_model
from hr_jax.training.data import collate, load_tokenizer, make_train_example, prompt_for
from hr_jax.training.export import accuracy, export_run
from hr_jax.training.loop import TOKENIZER_FILES, loss_fn, train
from hr_jax.training.state import init_model, init_train_params, restore_latest

__all__ = [
    "TOKENIZER_FILES",
    "TrainConfig",
    "accuracy",
    "collate",
    "demo_model",
    "export_run",
    "init_model",
    "init_train_params",
    "load_tokenizer",
    "loss_fn",
    "make_train_example",
    "prompt_for",
    "restore_latest",
    "train",
]
