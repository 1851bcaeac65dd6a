"""Checkpoints by Hugging Face Hub name, offline: a tiny checkpoint laid out as the Hub's cache
(`$HF_HOME/hub/models--org--name/snapshots/<commit>/`, `refs/main`) is converted by name, cached by
repository, commit and dtype, read back from the cache, and a name that is nowhere fails clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import subprocess_env

from hr_jax.checkpoint import CheckpointNotFound, hf_snapshot
from hr_jax.testing.checkpoints import build_random_checkpoint

REPO = "tiny-org/tiny-omni"
OLD, NEW = "1" * 40, "2" * 40  # commits; refs/main points at NEW


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> Path:
    """An HF_HOME whose hub cache holds REPO at two commits."""
    home = tmp_path_factory.mktemp("hf_home")
    repo_dir = home / "hub" / ("models--" + REPO.replace("/", "--"))
    for seed, commit in enumerate((OLD, NEW)):
        build_random_checkpoint(repo_dir / "snapshots" / commit, {"num_hidden_layers": 2}, seed=seed)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(NEW)
    return home


@pytest.fixture
def offline_hub(hf_home, tmp_path, monkeypatch) -> Path:
    """HF_HOME set and the Hub offline in this process; a fresh HR_JAX_CACHE, returned."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "hr_jax_cache"
    monkeypatch.setenv("HR_JAX_CACHE", str(cache))
    return cache


def test_a_hub_name_resolves_to_its_cached_snapshot_offline(offline_hub, hf_home):
    assert hf_snapshot(REPO).name == NEW
    assert hf_snapshot(REPO, revision=OLD).name == OLD


def test_load_by_name_converts_once_then_reads_the_conversion_cache(offline_hub, capfd):
    import hr_jax

    first = hr_jax.load(REPO, dtype="float32")
    assert "converting" in capfd.readouterr().err
    key = offline_hub / "converted" / REPO.replace("/", "--") / NEW / "float32"
    assert (key / "hr_jax_config.json").is_file()
    second = hr_jax.load(REPO, dtype="float32")
    err = capfd.readouterr().err
    assert "from the conversion cache" in err and "converting" not in err
    np.testing.assert_array_equal(np.asarray(first.params.embed), np.asarray(second.params.embed))


def test_a_revision_pins_another_commit_with_its_own_cache_entry(offline_hub):
    import hr_jax

    new = hr_jax.load(REPO, dtype="float32")
    old = hr_jax.load(REPO, dtype="float32", revision=OLD)
    assert (offline_hub / "converted" / REPO.replace("/", "--") / OLD / "float32").is_dir()
    assert not np.array_equal(np.asarray(new.params.embed), np.asarray(old.params.embed))


def test_the_dtype_is_part_of_the_cache_key(offline_hub):
    import hr_jax

    model = hr_jax.load(REPO)  # a Hub name converts to bfloat16 by default
    assert model.dtype.name == "bfloat16"
    assert (offline_hub / "converted" / REPO.replace("/", "--") / NEW / "bfloat16").is_dir()


def test_an_unknown_name_offline_says_it_is_neither_a_directory_nor_a_reachable_repository(offline_hub):
    with pytest.raises(CheckpointNotFound, match="neither a local directory nor a Hugging Face Hub"):
        hf_snapshot("tiny-org/not-there")


def test_a_path_that_is_no_repository_name_says_so(offline_hub, tmp_path):
    with pytest.raises(CheckpointNotFound, match="neither a local directory nor"):
        hf_snapshot(str(tmp_path / "no" / "such" / "dir"))


def test_a_revision_with_a_local_directory_is_refused(tmp_path):
    with pytest.raises(ValueError, match="applies to Hub names"):
        hf_snapshot(tmp_path, revision="main")


def _cli(args: list[str], hf_home: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        **subprocess_env(),
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "HR_JAX_CACHE": str(tmp_path / "c"),
    }
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run(
        [sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip


def test_the_converter_takes_a_hub_name_with_hf_hub_offline(hf_home, tmp_path):
    out = tmp_path / "ckpt"
    r = _cli(["convert.hf_to_jax", "--hf-dir", REPO, "--out", str(out), "--revision", OLD], hf_home, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "hr_jax_config.json").is_file() and (out / "tokenizer.json").is_file()


def test_the_converter_names_both_possibilities_for_an_unknown_name(hf_home, tmp_path):
    args = ["convert.hf_to_jax", "--hf-dir", "tiny-org/absent", "--out", str(tmp_path / "x")]
    r = _cli(args, hf_home, tmp_path)
    assert r.returncode == 1
    assert "neither a local directory nor a Hugging Face Hub repository" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x").exists()
