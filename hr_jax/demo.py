"""`hr-jax demo`: generation with and without pruning, on a machine with nothing downloaded.

With the synthetic-task model shipped in `hr_jax/assets/synth_model` (`--ckpt demo`, trained on
`hr_jax.synth`; bench/ACCURACY.md has its measured accuracy) it answers a question about a bundled
synthetic clip with every method, marks each reply right or wrong, and draws the kept tokens over the
waveform with the informative segments (where the answer is) marked. With `--random` it builds a tiny
random-weight Qwen2.5-Omni thinker checkpoint in the Hugging Face layout (no PyTorch needed; cached
under `~/.cache/hr_jax`), converts it with the real converter and generates from it — the text is
then meaningless, and the demo says so.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hr_jax.audio import SAMPLE_RATE
from hr_jax.model import DEMO_DIR

ASSETS = Path(__file__).parent / "assets"
SHIPPED_MODEL = DEMO_DIR
SHIPPED_CLIP = ASSETS / "demo_clip.wav"
SHIPPED_CLIP_INFO = ASSETS / "demo_clip.json"
MODEL_CARD = DEMO_DIR / "model_card.json"  # what bench/ACCURACY.md measured of the shipped model
CACHE = Path(os.environ.get("HR_JAX_CACHE", Path.home() / ".cache" / "hr_jax"))

RUNS = (("vanilla", 0.0), ("headrouter", 0.3), ("headrouter", 0.6), ("frame", 0.6), ("fastv", 0.6),
        ("dart", 0.6), ("random", 0.6), ("headrouter", 0.9))  # fmt: skip


def random_checkpoint() -> Path:
    """A converted tiny random-weight checkpoint, built and converted once, then cached."""
    from hr_jax.checkpoint import convert
    from hr_jax.testing.checkpoints import build_random_checkpoint

    out = CACHE / "demo_tiny_random"
    if (out / "hr_jax_config.json").exists():
        return out
    hf = CACHE / "demo_tiny_random_hf"
    shape = {"num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 16, "hidden_size": 128}
    build_random_checkpoint(hf, config_overrides={**shape, "num_hidden_layers": 4})
    return convert(hf, out, dtype="float32", overwrite=True)


def synthetic_clip(seconds: float = 12.0) -> np.ndarray:
    """Tones, a chirp and silence (used when no clip is bundled)."""
    sr = SAMPLE_RATE
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for start, f in ((1.0, 440.0), (4.0, 660.0), (7.5, 330.0)):
        seg = (t >= start) & (t < start + 1.5)
        x[seg] = 0.3 * np.sin(2 * np.pi * f * t[seg])
    seg = (t >= 10.0) & (t < 11.5)
    x[seg] = 0.3 * np.sin(2 * np.pi * (200 + 600 * (t[seg] - 10.0)) * t[seg])
    return (x + 0.003 * np.random.default_rng(0).standard_normal(t.shape)).astype(np.float32)


def demo_main(argv: Sequence[str] | None = None) -> int:
    import hr_jax
    from hr_jax.audio import load_audio
    from hr_jax.eval.prompts import parse_answer

    ap = argparse.ArgumentParser(prog="hr-jax demo", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--random", action="store_true", help="use a random-weight model even if a trained one ships"
    )
    ap.add_argument("--audio", default=None, help="a clip of your own (default: the bundled one)")
    ap.add_argument("--prompt", default=None)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--out", default="demo_out", help="directory for the kept-token plot")
    ap.add_argument(
        "--repeat", type=int, default=2, help="calls per method: the first compiles, the last is timed"
    )
    args = ap.parse_args(argv)

    trained = SHIPPED_MODEL.exists() and not args.random
    t0 = time.perf_counter()
    model = hr_jax.load(SHIPPED_MODEL if trained else random_checkpoint(), dtype="float32")
    print(f"model: {'trained synthetic-task model' if trained else 'tiny Qwen2.5-Omni thinker'} "
          f"({sum(x.size for x in __import__('jax').tree.leaves(model.params)) / 1e6:.1f} M params, "
          f"loaded in {time.perf_counter() - t0:.1f} s)")  # fmt: skip
    if not trained:
        print("NOTE: the weights are RANDOM. The text below is meaningless; the demo shows the pipeline "
              "(front end, encoder, pruning, KV-cache decoding) and its timings.")  # fmt: skip
    elif MODEL_CARD.exists():
        print(f"trained on hr_jax.synth: {json.loads(MODEL_CARD.read_text())['summary']}")
    info = json.loads(SHIPPED_CLIP_INFO.read_text()) if SHIPPED_CLIP_INFO.exists() else {}
    if args.audio:
        wave, prompt = load_audio(args.audio), args.prompt or "Describe the audio."
    elif SHIPPED_CLIP.exists():
        wave, prompt = load_audio(SHIPPED_CLIP), args.prompt or info.get("prompt", "Describe the audio.")
    else:
        wave, prompt = synthetic_clip(), args.prompt or "Describe the audio."
    bundled = not args.audio and not args.prompt and SHIPPED_CLIP.exists()
    choices = info.get("choices", []) if bundled else []
    print(f"audio: {len(wave) / SAMPLE_RATE:.1f} s   prompt: {prompt!r}")
    if bundled and info.get("answer"):
        print(f"reference answer: {info['answer']!r} ({info.get('answer_letter', '?')})")
    if model.router_path:
        print(f"router: {model.router_path}")
    batch = hr_jax.make_batch(model, [wave], [prompt])
    masks = {}
    print(f"\n{'method':<11}{'ratio':>6}{'audio tok':>10}{'kept':>6}  {'prefill':>8}{'decode tok/s':>13}  "
          f"alpha(sem,uni,aco)  reply")  # fmt: skip
    for method, ratio in RUNS:
        for _ in range(max(1, args.repeat)):  # the first call compiles prefill and decode
            out = hr_jax.generate_batch(
                model, batch, ratio, method=method, max_new_tokens=args.max_new_tokens
            )
        n = int(out.num_generated[0])
        alpha = "" if out.alpha is None else "(" + ",".join(f"{a:.2f}" for a in out.alpha[0]) + ")"
        rate = n / max(out.decode_s, 1e-9)
        mark = ""
        if choices:
            mark = (
                "  right" if parse_answer(out.texts[0], choices) == info.get("answer_letter") else "  wrong"
            )
        print(f"{method:<11}{ratio:>6.1f}{int(out.num_audio[0]):>10}{int(out.kept_audio[0]):>6}  "
              f"{out.prefill_s * 1e3:>6.0f}ms{rate:>13.0f}  {alpha:<19}{out.texts[0]!r}{mark}")  # fmt: skip
        if ratio == 0.6 and method in ("headrouter", "frame", "fastv", "dart", "random"):
            audio_pos = np.flatnonzero(batch.input_ids[0] == model.config.audio_token_id)
            masks[method] = np.isin(audio_pos, out.kept_positions[0])
    if masks:
        from hr_jax.eval.plots import kept_tokens

        os.makedirs(args.out, exist_ok=True)
        segments = [tuple(x) for x in info.get("segments", [])] if bundled else []
        path = kept_tokens(
            wave, masks, os.path.join(args.out, "kept_tokens.png"), title="kept audio tokens, r=0.6",
            informative=segments,
        )  # fmt: skip
        print(f"\nkept tokens over the waveform: {path}")
    return 0
