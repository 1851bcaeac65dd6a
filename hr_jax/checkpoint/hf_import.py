"""Hugging Face checkpoint -> hr_jax checkpoint, for every family, and the conversion cache of Hub names.

    python -m convert.hf_to_jax --hf-dir DIR|ORG/NAME --out DIR [--revision REV] [--dtype bfloat16|float32]

The family is the one whose `matches` takes the directory's `config.json` (`models.family`); an
unknown `model_type` is refused by name. The family's `read_hf` checks every tensor from the
safetensors headers before any data is read (`models.hf_checkpoint`) and yields one parameter leaf at a
time. The output (orbax `params/`, `hr_jax_config.json`, `hf_config.json`, tokenizer/chat-template/
preprocessor/generation-config files) is written into a temporary sibling directory and moved to
`--out` with `os.replace` at the end; on failure nothing is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ml_dtypes
import numpy as np

from hr_jax.checkpoint.hub import AUX_FILES, converted_dir, hf_snapshot, locked
from hr_jax.checkpoint.store import CONFIG_FILE, HF_CONFIG_FILE, save_leaves
from models.family import family_for_hf_config
from models.hf_checkpoint import ConversionError

DTYPES = {"bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "float16": np.float16}


@contextmanager
def atomic_dir(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yields a fresh temporary sibling of `out`, moved to `out` on success and removed on failure."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"--out {out} exists and is not empty (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    old = None
    try:
        yield tmp
        if out.is_dir() and any(out.iterdir()):
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old, out)  # put the previous checkpoint back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def convert(
    hf_dir: str | Path,
    out_dir: str | Path,
    dtype: str = "bfloat16",
    overwrite: bool = False,
    revision: str | None = None,
    merge_lora: bool = True,
) -> Path:
    """Converts a Hugging Face checkpoint of any registered family (Qwen2.5-Omni full or thinker-only;
    Phi-4-Multimodal in either released layout) into an hr_jax checkpoint.

    `hf_dir`: a local directory, or a Hub repository name (`Qwen/Qwen2.5-Omni-3B`) resolved with
    `hr_jax.checkpoint.hub.hf_snapshot` at `revision` (only the files the converters read are fetched).
    `dtype`: "bfloat16" (default), "float32" or "float16". `merge_lora`: merge an adapter the family
    ships (Phi-4's speech LoRA; default), False converts the base weights alone. Returns the output
    directory. Raises ConversionError (a ValueError) naming the offending tensor for unknown, missing
    or misshapen tensors, or the `model_type` no family implements; FileExistsError for a non-empty
    `out_dir` without `overwrite`; `CheckpointNotFound` for a name that is neither a directory nor a
    reachable Hub repository.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    hf_dir, out = hf_snapshot(hf_dir, revision).absolute(), Path(out_dir).absolute()
    config_file = hf_dir / "config.json"
    if not config_file.is_file():
        raise ConversionError(f"{config_file} not found: not a Hugging Face checkpoint directory")
    hf_config = json.loads(config_file.read_text())
    family = family_for_hf_config(hf_config)
    if family is None:
        from models.family import family_descriptions

        raise ConversionError(
            f"{config_file}: model_type={hf_config.get('model_type')!r} is not a model hr_jax implements "
            f"({family_descriptions()})"
        )
    with atomic_dir(out, overwrite) as tmp:
        ckpt = family.read_hf(hf_dir, hf_config, merge_lora=merge_lora)
        save_leaves(ckpt.leaves(DTYPES[dtype]), ckpt.cfg, tmp, dtype=dtype, source=ckpt.source)
        shutil.copyfile(config_file, tmp / HF_CONFIG_FILE)
        for name in AUX_FILES:
            if (hf_dir / name).is_file():
                shutil.copyfile(hf_dir / name, tmp / name)
    if ckpt.note:
        print(ckpt.note, file=sys.stderr)
    return out


def converted_from_hub(name: str, revision: str | None = None, dtype: str = "bfloat16") -> Path:
    """The converted checkpoint of Hub repository `name` at `revision` in `dtype`: converted once into
    the cache (`hr_jax.checkpoint.hub.converted_dir`), read from there afterwards. Says on stderr which
    it did. Concurrent processes take a file lock: one converts, the others wait and read the cache."""
    snapshot = hf_snapshot(name, revision)
    commit = snapshot.name  # the Hub cache keeps each revision under snapshots/<commit hash>/
    out = converted_dir(name, commit, dtype)
    with locked(out.parent / f".{dtype}.lock"):
        if (out / CONFIG_FILE).is_file():
            print(f"hr_jax: {name}@{commit[:12]} ({dtype}) from the conversion cache {out}", file=sys.stderr)
            return out
        print(
            f"hr_jax: converting {name}@{commit[:12]} to {dtype} into {out} (once; later loads read it)",
            file=sys.stderr,
        )
        return convert(snapshot, out, dtype=dtype, overwrite=True)
