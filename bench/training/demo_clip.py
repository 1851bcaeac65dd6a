"""Choose and write the clip `hr-jax demo` plays (`hr_jax/assets/demo_clip.{wav,json}`).

    python -m bench.training.demo_clip --ckpt demo

The clip comes from a seed no split uses (test split, `--seed 7`): `sound_after_word` clips of
15-30 s, in index order; the first one the shipped model answers correctly, greedy and unpruned,
is written, and its index and the rule are recorded in the JSON. The choice is therefore biased
toward a clip the model gets right (that is the point of a demo); the unbiased numbers are in
`bench/ACCURACY.md`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf

import hr_jax
from hr_jax.audio import SAMPLE_RATE
from hr_jax.demo import SHIPPED_CLIP, SHIPPED_CLIP_INFO
from hr_jax.eval.datasets import parse_record
from hr_jax.eval.prompts import build_prompt, parse_answer
from hr_jax.synth import make_example

TASK = "sound_after_word"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.training.demo_clip", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--ckpt", default="demo")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tries", type=int, default=40)
    ap.add_argument("--wav", type=Path, default=SHIPPED_CLIP)
    ap.add_argument("--json", type=Path, default=SHIPPED_CLIP_INFO)
    a = ap.parse_args(argv)
    model = hr_jax.load(a.ckpt, dtype="float32")
    for index in range(a.tries):
        audio, rec = make_example(TASK, index, split="test", seed=a.seed, min_seconds=15.0, max_seconds=30.0)
        sample = parse_record(rec)  # as `hr-jax eval --benchmark synth` reads the clip
        prompt, choices = build_prompt(sample), list(sample.choices)
        reply = hr_jax.generate(model, audio, 0.0, prompt=prompt, max_new_tokens=16)
        if parse_answer(reply, choices) != sample.answer:
            continue
        sf.write(a.wav, audio, SAMPLE_RATE, subtype="PCM_16")
        info = {
            "task": TASK, "prompt": prompt, "choices": choices, "answer": rec["answer_gt"],
            "answer_letter": sample.answer, "segments": rec["segments"], "timeline": rec["timeline"],
            "source": f"hr_jax.synth.make_example({TASK!r}, {index}, split='test', seed={a.seed}, "
                      "min_seconds=15, max_seconds=30)",
            "chosen": f"the first of indices 0..{a.tries - 1} the shipped model answers right, unpruned "
                      f"(index {index}; {index} earlier ones answered wrong)",
        }  # fmt: skip
        a.json.write_text(json.dumps(info, indent=1) + "\n")
        print(f"clip {index}: {reply!r} (answer {sample.answer}); wrote {a.wav} and {a.json}")
        return 0
    print(f"none of the first {a.tries} clips is answered right", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
