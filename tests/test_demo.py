"""`hr-jax demo`, README's main command, runs with nothing downloaded and reports every method."""

from __future__ import annotations

import json

import hr_jax
from hr_jax.demo import RUNS, SHIPPED_CLIP, SHIPPED_CLIP_INFO, SHIPPED_MODEL, demo_main
from hr_jax.eval.prompts import parse_answer


def test_demo_runs_every_method_on_the_shipped_model_and_draws_kept_tokens(tmp_path, capsys):
    assert SHIPPED_MODEL.exists(), "the trained demo model ships with the package"
    assert demo_main(["--max-new-tokens", "4", "--out", str(tmp_path), "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0] in dict(RUNS)]
    assert [(r[0], float(r[1])) for r in rows] == [(m, float(r)) for m, r in RUNS]
    for r in rows:
        audio_tokens, kept = int(r[2]), int(r[3])
        assert kept == int(audio_tokens * (1 - float(r[1])))  # k = floor(Na (1 - r))
    assert (tmp_path / "kept_tokens.png").stat().st_size > 0
    assert "RANDOM" not in out  # the trained model, not the random fallback
    assert [r[-1] for r in rows if r[0] == "vanilla"] == ["right"]  # the bundled clip, answered right


def test_the_shipped_model_answers_the_bundled_clip():
    info = json.loads(SHIPPED_CLIP_INFO.read_text())
    model = hr_jax.load(SHIPPED_MODEL)
    reply = hr_jax.generate(model, str(SHIPPED_CLIP), 0.0, prompt=info["prompt"], max_new_tokens=8)
    assert parse_answer(reply, info["choices"]) == info["answer_letter"]
