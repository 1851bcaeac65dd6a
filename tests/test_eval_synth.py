"""The ``synth`` benchmark: hr_jax.synth's records load unchanged, prompts match training, report table."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from hr_jax.engine import GenerateOutput
from hr_jax.eval import audio_io, results
from hr_jax.eval.cli import eval_parser, report_main
from hr_jax.eval.datasets import load_benchmark, load_synth, parse_record
from hr_jax.eval.prompts import build_prompt, parse_answer, record_prompt
from hr_jax.eval.report import build_report
from hr_jax.eval.rows import score
from hr_jax.eval.runner import run_eval
from hr_jax.eval.tasks import (
    F1_MACRO,
    F1_WEIGHTED,
    SYNTH,
    WORD_ACCURACY,
    benchmark_tasks,
    normalize_benchmark,
    resolve_task,
)
from hr_jax.synth import TASK_NAMES, TASKS, plan_example, task_file
from hr_jax.synth.tasks import plan_to_record
from hr_jax.training import prompt_for

ORDER = ["digits", "spoken_qa", "sound_event", "scene", "melody", "gender", "sound_after_word"]


def test_registry_mirrors_hr_jax_synth():
    infos = benchmark_tasks("synth")
    assert [t.key for t in infos] == ORDER and set(ORDER) == set(TASK_NAMES)
    for t in infos:
        assert t.group == TASKS[t.key].category and t.benchmark == SYNTH
        assert t.is_asr == (TASKS[t.key].n_choices == 0)
    assert [t.abbrev for t in infos] == ["DIG", "SQA", "SEV", "SCN", "MEL", "GEN", "SAW"]
    metrics = {t.key: t.metric for t in infos}
    assert metrics["digits"] == WORD_ACCURACY and metrics["gender"] == F1_WEIGHTED
    assert all(m == F1_MACRO for k, m in metrics.items() if k not in ("digits", "gender"))
    assert normalize_benchmark("Synthetic") == SYNTH
    assert resolve_task("synth", "SAW").key == "sound_after_word"
    assert resolve_task("synth", "sound-after-word").key == "sound_after_word"
    with pytest.raises(ValueError):
        resolve_task("synth", "gtzan")


@pytest.mark.parametrize("task", ORDER)
def test_eval_prompt_is_the_training_prompt_and_target_parses(task):
    """Records without audio: prompt as the loader builds it; the training target scores correct."""
    for i in range(4):
        rec = plan_to_record(plan_example(task, i, "test"))
        sample = parse_record(rec)
        assert sample.benchmark == SYNTH and sample.category == TASKS[task].category
        prompt = record_prompt(rec)
        assert prompt == build_prompt(sample)
        assert prompt_for(rec, "eval") == prompt  # what training asks in the benchmark's style
        if task == "digits":
            assert sample.is_asr and sample.reference == rec["target"]
            assert prompt.startswith("Transcribe the audio")
        else:
            assert sample.answer == rec["answer_letter"]
            assert f"{sample.answer}. {rec['target']}" in prompt
            # the synthetic model answers with the option text, not the letter
            assert parse_answer(rec["target"], sample.choices) == sample.answer
            assert parse_answer(f"{rec['target']}.", sample.choices) == sample.answer
            assert parse_answer(rec["target"].upper(), sample.choices) == sample.answer
        assert score(sample, rec["target"])[1]


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    from hr_jax.synth import EspeakNotFoundError, generate

    root = tmp_path_factory.mktemp("synth") / "test"
    try:
        for task in ORDER:
            generate(root, "test", task, n=2, seed=0, min_seconds=2, max_seconds=8, progress=False)
    except EspeakNotFoundError as exc:
        pytest.skip(str(exc))
    return str(root)


def _records(root, task):
    with open(task_file(root, task), encoding="utf-8") as f:
        return json.load(f)


def test_loader_reads_generated_records_unchanged(synth_dir):
    by_task, report = load_benchmark("synth", synth_dir, ["all"])
    assert list(by_task) == ORDER
    assert report.problems == [] and report.loaded == report.records == 2 * len(ORDER)
    for task, samples in by_task.items():
        info = resolve_task("synth", task)
        recs = _records(synth_dir, task)
        assert len(samples) == 2
        for s, rec in zip(samples, recs, strict=True):
            assert (s.task, s.benchmark) == (task, SYNTH) and s.category == info.group == rec["category"]
            assert s.audio_path == os.path.join(synth_dir, rec["path"]) and os.path.isfile(s.audio_path)
            assert s.duration_s == pytest.approx(rec["duration"], abs=1e-3)
            assert build_prompt(s) == record_prompt(rec)
            if info.is_asr:
                assert s.reference == rec["transcript"] == rec["answer_gt"] and s.choices == ()
            else:
                n = TASKS[task].n_choices
                assert s.choices == tuple(rec[f"choice_{c}"] for c in "abcd"[:n])
                assert s.answer == rec["answer_letter"]
    some, _ = load_benchmark("synth", synth_dir, ["DIG", "gender"])
    assert list(some) == ["digits", "gender"]
    one, rep = load_synth(synth_dir, "SAW", check_audio=False)
    assert [s.task for s in one] == ["sound_after_word"] * 2 and rep.benchmark == SYNTH
    args = eval_parser().parse_args(
        ["--ckpt", "c", "--data-dir", synth_dir, "--benchmark", "synth", "--out", "o"]
    )
    assert normalize_benchmark(args.benchmark) == SYNTH


def _key(audio) -> str:
    return hashlib.sha1(np.asarray(audio, np.float32).tobytes()).hexdigest()


def test_run_and_report_end_to_end(synth_dir, tmp_path):
    """run_eval over the generated data with an oracle engine (option-text replies), then the report."""
    targets = {}
    for task in ORDER:
        for rec in _records(synth_dir, task):
            targets[_key(audio_io.load_waveform([os.path.join(synth_dir, rec["path"])]))] = rec["target"]

    def oracle(audios, prompts, *, ratio, method, router, max_new_tokens, mesh, seed):
        b = len(audios)
        if ratio == 0:
            texts = [targets[_key(a)] for a in audios]
        else:  # a worse model: always the first option's letter, or a wrong transcript
            texts = ["A" if "\nA. " in p else "zero" for p in prompts]
        na = np.array([len(a) // 640 for a in audios])
        return GenerateOutput(
            texts, [[]] * b, np.ones(b, int), na, na, None, None, None, np.full(b, -1), 0.0, 0.0
        )

    out = str(tmp_path / "run")
    summary = run_eval(
        None, synth_dir, "synth", ["all"], ["vanilla", "frame"], [0.5], out, batch_size=4,
        generate_fn=oracle, progress=False,
    )  # fmt: skip
    assert summary["status"] == "complete" and summary["benchmark"] == "synth"
    rows = results.read_results(results.result_path(out, "gender", "vanilla", 0.0))
    recs = {r["path"]: r for r in _records(synth_dir, "gender")}
    for row in rows:
        rec = recs[os.path.relpath(row["audio_paths"][0], synth_dir)]
        assert row["prompt"] == record_prompt(rec) and row["correct"]

    rep = build_report(out)
    assert rep.benchmark == SYNTH
    assert [c.label for c in rep.columns] == ["DIG", "SQA", "SEV", "SCN", "MEL", "GEN", "SAW"]
    van, frame = rep.row("vanilla", 0.0), rep.row("frame", 0.5)
    assert all(c.value == pytest.approx(100.0) for c in van.cells.values())
    assert van.mean == pytest.approx(100.0) and van.avg_pct == pytest.approx(100.0)
    assert frame.avg_pct == pytest.approx(frame.mean) and frame.avg_pct < 100
    md = rep.to_markdown()
    assert "Semantic: DIG, SQA · Acoustic: SEV, SCN, MEL, GEN · Mixed: SAW" in md


def _row(i, task, method, ratio, ref, pred):
    return {"id": i, "task": task, "method": method, "ratio": ratio, "reference": ref, "prediction": pred,
            "correct": pred == ref, "error": None, "alpha": None, "kept_mask": None, "num_audio": None,
            "audio_paths": []}  # fmt: skip


def _write(run_dir, task, method, ratio, refs, preds):
    path = results.result_path(str(run_dir), task, method, ratio)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pairs = enumerate(zip(refs, preds, strict=True))
    rows = [_row(f"{task}-{k}", task, method, ratio, r, p) for k, (r, p) in pairs]
    with open(path, "w", encoding="utf-8") as f:
        results.append_rows(f, rows)


# Hand-computed: DIG word accuracy 100 / 5 of 6 words; GEN weighted F1 (supports A=3, B=1)
# (3*0.8 + 2/3)/4 / 3*(6/7)/4; SAW macro F1 over A-D 100 / (1+1+1+0)/4.
DIG = {"vanilla": 100.0, "frame": 100 * 5 / 6}
GEN = {"vanilla": 100 * (3 * 0.8 + 2 / 3) / 4, "frame": 100 * 3 * (6 / 7) / 4}
SAW = {"vanilla": 100.0, "frame": 75.0}


@pytest.fixture
def synth_run(tmp_path):
    run = tmp_path / "run"
    digits = ["one two three", "four five six"]
    _write(run, "digits", "vanilla", 0.0, digits, ["One, two, three.", "four five six"])
    _write(run, "digits", "frame", 0.5, digits, ["one two", "four five six"])
    _write(run, "gender", "vanilla", 0.0, list("AAAB"), list("AABB"))
    _write(run, "gender", "frame", 0.5, list("AAAB"), list("AAAA"))
    _write(run, "sound_after_word", "vanilla", 0.0, list("ABCD"), list("ABCD"))
    _write(run, "sound_after_word", "frame", 0.5, list("ABCD"), ["A", "B", "C", None])
    return run


def test_report_table_for_a_synth_run(synth_run, capsys):
    rep = build_report(str(synth_run))  # no run_summary.json: the benchmark is inferred from the tasks
    assert rep.benchmark == SYNTH
    assert [(c.label, c.group) for c in rep.columns] == [
        ("DIG", "semantic"), ("GEN", "acoustic"), ("SAW", "mixed")
    ]  # fmt: skip
    mean = {m: (DIG[m] + GEN[m] + SAW[m]) / 3 for m in DIG}
    for m, ratio in (("vanilla", 0.0), ("frame", 0.5)):
        row = rep.row(m, ratio)
        assert row.cells["digits"].value == pytest.approx(DIG[m])
        assert row.cells["gender"].value == pytest.approx(GEN[m])
        assert row.cells["sound_after_word"].value == pytest.approx(SAW[m])
        assert row.mean == pytest.approx(mean[m])
        assert row.avg_pct == pytest.approx(100 * mean[m] / mean["vanilla"])
    md = rep.to_markdown()
    assert md.startswith("## Synthetic tasks")
    assert "Semantic: DIG · Acoustic: GEN · Mixed: SAW" in md and "DIG (word accuracy" in md
    frame_avg = 100 * mean["frame"] / mean["vanilla"]
    assert f"| Frame | 83.3 | {GEN['frame']:.1f} | 75.0 | {mean['frame']:.1f} | **{frame_avg:.1f}%** |" in md
    assert "| Vanilla | 100.0 |" in md and "| 100.0%" in md

    assert report_main([str(synth_run), "--tasks", "SAW,DIG", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "| Method | DIG | SAW | Mean | Avg. | Diff. |" in printed
