"""Checkpoints by Hugging Face Hub name (`Qwen/Qwen2.5-Omni-3B`), and the conversion cache.

A name that is not a local directory is resolved with `huggingface_hub.snapshot_download`, fetching
only the files the converter reads (`converter_files()`), at `revision` (a branch, tag or commit; default
the repository's default branch). The Hub's own cache and its variables apply unchanged: `HF_HOME` /
`HF_HUB_CACHE` place it, and `HF_HUB_OFFLINE=1` resolves names from it without any network access.

`hr_jax.load(name)` converts once (`hr_jax.checkpoint.hf_import.converted_from_hub`) into the conversion
cache, keyed by repository, resolved commit and dtype:

    $HR_JAX_CACHE/converted/<org>--<name>/<commit>/<dtype>/    (default HR_JAX_CACHE: ~/.cache/hr_jax)

and loads from there afterwards. Concurrent processes (a multi-process evaluation) take a file lock,
so one converts and the others wait and then read the cache.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from models.family import family_hf_files

CACHE_ENV = "HR_JAX_CACHE"
HF_CONFIG = "config.json"
SAFETENSORS_INDEX = "model.safetensors.index.json"
# Tokenizer, chat template, preprocessor and generation files the converter copies next to the weights.
AUX_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
    "added_tokens.json", "chat_template.json", "chat_template.jinja", "preprocessor_config.json",
    "generation_config.json",
)  # fmt: skip
# What the converter reads, and so all that a Hub download fetches (never the talker's audio output
# files, the vision processor, READMEs or other formats).
COMMON_FILES = (HF_CONFIG, SAFETENSORS_INDEX, "*.safetensors", *AUX_FILES)


def converter_files() -> tuple[str, ...]:
    """Every file pattern a converter reads: the common ones and each family's own (`hf_files`)."""
    return (*COMMON_FILES, *family_hf_files())


# A Hub repository id: "name" or "org/name" of letters, digits, "-", "_", "."; no "--" or "..".
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


class CheckpointNotFound(FileNotFoundError):
    """Neither a local directory nor a Hugging Face Hub repository that could be reached."""


def cache_root() -> Path:
    """hr_jax's cache directory: `$HR_JAX_CACHE`, default `~/.cache/hr_jax`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hr_jax").expanduser()


def is_repo_id(name: str) -> bool:
    """Whether `name` is spelled like a Hub repository id (`org/name`)."""
    return bool(_REPO_ID.match(name)) and "--" not in name and ".." not in name


def _not_found(name: str, revision: str | None, reason: str) -> CheckpointNotFound:
    at = f" at revision {revision!r}" if revision else ""
    return CheckpointNotFound(
        f"{name!r} is neither a local directory nor a Hugging Face Hub repository that could be "
        f"reached{at}: {reason}"
    )


def hf_snapshot(name_or_dir: str | os.PathLike, revision: str | None = None) -> Path:
    """The local directory of a Hugging Face checkpoint: `name_or_dir` itself when it is a directory,
    else the Hub snapshot of the repository it names (downloaded if needed: `converter_files()` only).

    Raises `CheckpointNotFound` (naming both possibilities) when it is neither.
    """
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        if revision is not None:
            raise ValueError(f"--revision {revision!r} applies to Hub names, but {path} is a local directory")
        return path
    name = os.fspath(name_or_dir)
    if path.exists():
        raise CheckpointNotFound(f"{name!r} is a file, not a checkpoint directory or a Hub repository name")
    if not is_repo_id(name):
        raise _not_found(name, revision, "no such directory, and not a repository name like 'org/name'")
    try:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(repo_id=name, revision=revision, allow_patterns=list(converter_files()))
    except Exception as exc:  # each huggingface_hub error class is a way of not reaching it
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _not_found(name, revision, f"{type(exc).__name__}: {reason}") from exc
    snapshot = Path(snapshot)
    if not (snapshot / HF_CONFIG).is_file():
        raise _not_found(name, revision, f"the snapshot {snapshot} has no {HF_CONFIG}")
    return snapshot


def converted_dir(repo_id: str, commit: str, dtype: str) -> Path:
    """Where the conversion cache keeps `repo_id` at `commit` in `dtype`."""
    return cache_root() / "converted" / repo_id.replace("/", "--") / commit / dtype


@contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
