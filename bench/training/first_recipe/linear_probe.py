"""Diagnostic: is a task's label linearly decodable from the mean-pooled audio embeddings that the
decoder sees (a converted checkpoint against the same architecture at random init)?

    python bench/training/first_recipe/linear_probe.py --ckpt hr_jax/assets/synth_model --data data/test_short

If the probe is well above chance while the model's answers are at chance, the audio encoder has
learned and the decoder is not yet reading the audio tokens.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

import hr_jax
from hr_jax.batch import make_batch
from models.params import init_params
from models.qwen2_5_omni.thinker import embed_inputs


def pooled_audio(model: hr_jax.Model, params, wav: np.ndarray, sr: int) -> np.ndarray:
    """Mean over the audio-token slots of the input embeddings `[D]`."""
    b = make_batch(model, [(wav, sr)], ["x"])
    h = embed_inputs(
        params, model.config, jnp.asarray(b.input_ids), jnp.asarray(b.input_features),
        jnp.asarray(b.feature_attention_mask),
    )  # fmt: skip
    is_audio = np.asarray(b.input_ids == model.config.audio_token_id)[0]
    return np.asarray(h[0])[is_audio].mean(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", required=True, help="hr_jax.synth split directory")
    ap.add_argument("--tasks", default="gender,scene,sound_event,melody")
    a = ap.parse_args()
    model = hr_jax.load(a.ckpt)
    variants = {"trained": model.params, "random init": init_params(model.config, jax.random.key(0))}
    for task in a.tasks.split(","):
        records = json.loads((Path(a.data) / task / f"{task}.json").read_text())
        labels = np.array([r["answer_gt"] for r in records])
        chance = max(np.mean(labels == c) for c in set(labels))
        for name, params in variants.items():
            x = []
            for r in records:
                wav, sr = sf.read(Path(a.data) / r["path"])
                x.append(pooled_audio(model, params, wav, sr))
            acc = cross_val_score(LogisticRegression(max_iter=2000), np.array(x), labels, cv=5).mean()
            n = len(labels)
            print(f"{task:12s} {name:12s} probe accuracy {acc:.2f} (majority {chance:.2f}, n={n})")


if __name__ == "__main__":
    main()
