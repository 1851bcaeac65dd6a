"""Report tables for hand-written fixture runs match hand-computed numbers; the figures are written."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest

from hr_jax.eval import results
from hr_jax.eval.cli import report_main
from hr_jax.eval.report import build_report, write_report
from hr_jax.testing.eval_data import write_wav


def _row(i, task, method, ratio, ref, pred, **extra):
    row = {
        "id": i,
        "task": task,
        "method": method,
        "ratio": ratio,
        "reference": ref,
        "prediction": pred,
        "correct": pred == ref,
        "error": None,
        "alpha": None,
        "kept_mask": None,
        "num_audio": None,
        "audio_paths": [],
    }
    row.update(extra)
    return row


def _write(run_dir, task, method, ratio, rows):
    path = results.result_path(str(run_dir), task, method, ratio)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        results.append_rows(f, rows)


@pytest.fixture
def am_run(tmp_path):
    run = tmp_path / "run"
    wav = write_wav(str(tmp_path / "audio" / "g0.wav"), 1.0, 3)  # 25 audio tokens
    mask_frame = np.zeros(25, bool)
    mask_frame[::2] = True
    mask_hr = np.zeros(25, bool)
    mask_hr[5:18] = True

    def gtzan(method, ratio, preds, **extra_first):
        refs = ["A", "A", "B", "B"]
        rows = []
        for k, (ref, pred) in enumerate(zip(refs, preds, strict=True)):
            extra = {"audio_paths": [wav], "num_audio": 25}
            if k == 0:
                extra.update(extra_first)
            rows.append(_row(f"g{k}", "gtzan", method, ratio, ref, pred, **extra))
        return rows

    _write(run, "gtzan", "vanilla", 0.0, gtzan("vanilla", 0.0, ["A", "A", "B", "B"]))
    frame = gtzan("frame", 0.5, ["A", "B", "B", None], kept_mask=results.encode_mask(mask_frame))
    frame.append(_row("g9", "gtzan", "frame", 0.5, "A", None, correct=False, error="ValueError: unreadable"))
    _write(run, "gtzan", "frame", 0.5, frame)
    hr = gtzan("headrouter", 0.5, ["A", "A", "B", "A"], kept_mask=results.encode_mask(mask_hr))
    for k, r in enumerate(hr):
        r["alpha"] = [0.7, 0.2, 0.1] if k % 2 else [0.5, 0.3, 0.2]
    _write(run, "gtzan", "headrouter", 0.5, hr)
    _write(run, "gtzan", "random", 0.5, gtzan("random", 0.5, ["A", "A", "B", "B"])[:2])

    def vox(method, ratio, preds):
        refs = ["A", "A", "A", "B"]
        return [
            _row(f"v{k}", "vox_gender", method, ratio, r, p)
            for k, (r, p) in enumerate(zip(refs, preds, strict=True))
        ]

    _write(run, "vox_gender", "vanilla", 0.0, vox("vanilla", 0.0, ["A", "A", "B", "B"]))
    _write(run, "vox_gender", "frame", 0.5, vox("frame", 0.5, ["A", "A", "A", "A"]))
    hr_vox = vox("headrouter", 0.5, ["A", "A", "A", "B"])
    for r in hr_vox:
        r["alpha"] = [0.1, 0.2, 0.7]
    _write(run, "vox_gender", "headrouter", 0.5, hr_vox)

    refs = ["hello world", "good morning to you"]

    def asr(method, ratio, hyps):
        return [
            _row(f"u{k}", "librispeech", method, ratio, r, h, correct=r == h)
            for k, (r, h) in enumerate(zip(refs, hyps, strict=True))
        ]

    _write(run, "librispeech", "vanilla", 0.0, asr("vanilla", 0.0, ["Hello world.", "good morning to you"]))
    _write(run, "librispeech", "frame", 0.5, asr("frame", 0.5, ["hello", "good morning to you"]))
    _write(
        run, "librispeech", "headrouter", 0.5, asr("headrouter", 0.5, ["hello world", "good evening to you"])
    )
    return run


# Hand-computed cells (see the fixture):
# gtzan  vanilla 100; frame: A F1 2/3, B F1 1/2 -> 58.33; headrouter: A 0.8, B 2/3 -> 73.33
# vox_gender (weighted F1, supports A=3, B=1): vanilla (3*0.8 + 2/3)/4; frame 3*(6/7)/4; headrouter 100
# librispeech: vanilla 100; frame 1 deletion / 6 words; headrouter 1 substitution / 6 words
GTZAN = {"vanilla": 100.0, "frame": 100 * (2 / 3 + 1 / 2) / 2, "headrouter": 100 * (0.8 + 2 / 3) / 2}
VOX = {"vanilla": 100 * (3 * 0.8 + 2 / 3) / 4, "frame": 100 * 3 * (6 / 7) / 4, "headrouter": 100.0}
ASR = {"vanilla": 100.0, "frame": 100 * 5 / 6, "headrouter": 100 * 5 / 6}
MEAN = {m: (GTZAN[m] + VOX[m] + ASR[m]) / 3 for m in GTZAN}


def test_audiomarathon_table_numbers(am_run):
    rep = build_report(str(am_run))
    assert rep.benchmark == "audiomarathon"
    assert [c.label for c in rep.columns] == ["ASR", "MC", "SGR"]  # semantic first, paper order
    for m, ratio in (("vanilla", 0.0), ("frame", 0.5), ("headrouter", 0.5)):
        row = rep.row(m, ratio)
        assert row.cells["gtzan"].value == pytest.approx(GTZAN[m])
        assert row.cells["vox_gender"].value == pytest.approx(VOX[m])
        assert row.cells["librispeech"].value == pytest.approx(ASR[m])
        assert row.mean == pytest.approx(MEAN[m])
        assert row.avg_pct == pytest.approx(100 * MEAN[m] / MEAN["vanilla"])
        assert row.diff == pytest.approx(100 * MEAN[m] / MEAN["vanilla"] - 100)
    frame_gtzan = rep.row("frame", 0.5).cells["gtzan"]
    assert (frame_gtzan.n, frame_gtzan.errors, frame_gtzan.unparsed) == (4, 1, 1)
    rnd = rep.row("random", 0.5)
    assert rnd.partial and rnd.cells["gtzan"].partial and rnd.avg_pct == pytest.approx(100.0)
    assert [r.method for r in rep.rows] == ["vanilla", "random", "frame", "headrouter"]


def test_audiomarathon_markdown_and_csv(am_run, capsys):
    rep, paths = write_report(str(am_run))
    md = open(paths["markdown"], encoding="utf-8").read()
    assert md == rep.to_markdown()
    assert "| Method | ASR | MC | SGR | Mean | Avg. | Diff. |" in md
    assert "| *Retain 50% Tokens (↓50%)* |" in md
    hr_avg = 100 * MEAN["headrouter"] / MEAN["vanilla"]
    hr_line = next(line for line in md.splitlines() if line.startswith("| HeadRouter |"))
    assert hr_line == (
        f"| HeadRouter | {ASR['headrouter']:.1f} | {GTZAN['headrouter']:.1f} | {VOX['headrouter']:.1f} | "
        f"{MEAN['headrouter']:.1f} | **{hr_avg:.1f}%** | {hr_avg - 100:.1f}% |"
    )  # best complete row of its block in bold; the partial Random row is not eligible
    assert "| Random | – | 100.0* | – | 100.0* | 100.0% | 0.0% |" in md
    van_line = next(line for line in md.splitlines() if line.startswith("| Vanilla |"))
    assert van_line.endswith("| 100.0% |  |")
    table = list(csv.DictReader(io.StringIO(open(paths["csv"], encoding="utf-8").read())))
    by = {(r["method"], r["ratio"]): r for r in table}
    assert float(by[("frame", "0.5")]["MC"]) == pytest.approx(GTZAN["frame"], abs=1e-4)
    assert float(by[("frame", "0.5")]["avg_pct"]) == pytest.approx(
        100 * MEAN["frame"] / MEAN["vanilla"], abs=1e-4
    )
    assert by[("vanilla", "0")]["diff"] == ""
    # the figures
    assert paths["routing"] and open(paths["routing"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert len(paths["kept_tokens"]) == 1 and "gtzan_g0_r0.5" in paths["kept_tokens"][0]
    assert os.path.getsize(paths["kept_tokens"][0]) > 5000
    # rewriting an unchanged report leaves the files alone
    before = os.stat(paths["markdown"]).st_mtime_ns
    write_report(str(am_run), make_plots=False)
    assert os.stat(paths["markdown"]).st_mtime_ns == before
    # the CLI prints the same table and can restrict the columns
    assert report_main([str(am_run), "--no-plots", "--tasks", "MC,SGR"]) == 0
    out = capsys.readouterr().out
    assert "| Method | MC | SGR | Mean | Avg. | Diff. |" in out


def test_chosen_plot_samples_and_missing(am_run):
    rep, paths = write_report(str(am_run), plot_samples=["gtzan:g0", "nope"], plot_ratio=0.5)
    assert len(paths["kept_tokens"]) == 1
    assert any("'nope' not found" in n for n in rep.notes)


def test_mmau_pro_sample_weighted(tmp_path):
    run = tmp_path / "mmau"
    run.mkdir()
    (run / "run_summary.json").write_text(json.dumps({"benchmark": "mmau-pro", "files": []}))
    spec = {  # category: (vanilla correct, frame correct, total)
        "speech": (3, 2, 4),
        "voice_chat": (1, 2, 2),
        "sound": (2, 1, 4),
    }
    for cat, (v_ok, f_ok, n) in spec.items():
        for method, ratio, ok in (("vanilla", 0.0, v_ok), ("frame", 0.3, f_ok)):
            rows = [_row(f"{cat}{k}", cat, method, ratio, "A", "A" if k < ok else "B") for k in range(n)]
            _write(run, cat, method, ratio, rows)
    rep = build_report(str(run))
    assert rep.benchmark == "mmau-pro"
    assert [c.label for c in rep.columns] == ["Speech", "Voice Chat", "Sound"]
    van, frame = rep.row("vanilla", 0.0), rep.row("frame", 0.3)
    assert [van.cells[c].value for c in spec] == pytest.approx([75.0, 50.0, 50.0])
    assert [frame.cells[c].value for c in spec] == pytest.approx([50.0, 100.0, 25.0])
    assert van.mean == pytest.approx(60.0) and frame.mean == pytest.approx(50.0)  # 6/10 and 5/10
    assert frame.avg_pct == pytest.approx(100 * 50 / 60) and frame.diff == pytest.approx(100 * 50 / 60 - 100)
    md = rep.to_markdown()
    assert "Speech: Speech, Voice Chat · Acoustic: Sound" in md
    assert "| *Light Token Pruning (↓30%)* |" in md
    assert "| Frame | 50.0 | 100.0 | 25.0 | 50.0 | **83.3%** | -16.7% |" in md
