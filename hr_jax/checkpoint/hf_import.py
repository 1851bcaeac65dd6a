"""Hugging Face Qwen2.5-Omni (thinker) safetensors -> hr_jax orbax checkpoint.

    python -m convert.hf_to_jax --hf-dir DIR|ORG/NAME --out DIR [--revision REV] [--dtype bfloat16|float32]

Accepts full Omni checkpoints (tensors under `thinker.`; `talker.*` and `token2wav.*` skipped) and
thinker-only ones; the vision tower (`visual.*`) is skipped as well. Every other tensor must map to a
parameter through `hr_jax.checkpoint.HF_KEY_MAP` and every parameter must be filled, with the shape the
config implies; otherwise a `ConversionError` names the key. All of that is checked from the
safetensors headers before any tensor data is read. Then each parameter leaf in turn is filled from
short-lived memory maps of blocks of its tensors' rows, cast to the target dtype and written out, so
peak memory is about two copies of the largest leaf (the leaf and orbax's copy of it) plus one block,
whatever the model's size.

The output (orbax `params/`, `hr_jax_config.json`, `hf_config.json`, tokenizer/chat-template/
preprocessor/generation-config files) is written into a temporary sibling directory and moved to
`--out` with `os.replace` at the end; on failure nothing is left behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import ml_dtypes
import numpy as np

from hr_jax.audio import FeatureConfig
from hr_jax.checkpoint.hub import AUX_FILES, hf_snapshot
from hr_jax.checkpoint.keymap import KeyEntry, hf_key_map, leaf_shapes, to_hf_layout
from hr_jax.checkpoint.store import HF_CONFIG_FILE, save_leaves
from models.qwen2_5_omni.config import ThinkerConfig
from models.qwen2_5_omni.hf_config import config_from_hf

SKIP_PREFIXES = ("talker.", "token2wav.", "visual.")
DTYPES = {"bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "float16": np.float16}
# safetensors dtype names -> little-endian NumPy dtypes (bf16 / fp8 through ml_dtypes).
_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16), "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}  # fmt: skip


class ConversionError(ValueError):
    """The Hugging Face checkpoint does not match the thinker its config describes."""


def _normalize(key: str, omni: bool) -> str | None:
    """HF tensor name -> thinker-only name, or None for tensors the thinker does not use."""
    if key.startswith("thinker."):
        key = key[len("thinker.") :]
    elif omni and key.startswith(("talker.", "token2wav.")):
        return None
    # transformers>=5 in-memory names, in case a checkpoint was saved with them
    for new, old in (("model.language_model.", "model."), ("model.audio_tower.", "audio_tower."),
                     ("model.visual.", "visual.")):  # fmt: skip
        if key.startswith(new):
            key = old + key[len(new) :]
    if key.startswith(SKIP_PREFIXES):
        return None
    return key


def safetensors_files(hf_dir: Path) -> list[Path]:
    index = hf_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted(set(weight_map.values()))
        missing = [f for f in files if not (hf_dir / f).is_file()]
        if missing:
            raise ConversionError(f"{index} lists missing files {missing}")
        return [hf_dir / f for f in files]
    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise ConversionError(f"no *.safetensors files in {hf_dir}")
    return files


class TensorRef:
    def __init__(self, file: Path, key: str, shape: tuple[int, ...], dtype: str):
        self.file, self.key, self.shape, self.dtype = file, key, shape, dtype


def _scan(hf_dir: Path, omni: bool) -> dict[str, TensorRef]:
    """{thinker-only name: tensor location} from the safetensors headers (no tensor data read)."""
    from safetensors import safe_open

    found: dict[str, TensorRef] = {}
    for file in safetensors_files(hf_dir):
        with safe_open(str(file), framework="numpy") as f:
            for key in f.keys():
                name = _normalize(key, omni)
                if name is None:
                    continue
                if name in found:
                    raise ConversionError(
                        f"tensor {key!r} appears twice ({found[name].file.name}, {file.name})"
                    )
                sl = f.get_slice(key)
                found[name] = TensorRef(file, key, tuple(sl.get_shape()), sl.get_dtype())
    return found


def check_tensor_names(found: dict[str, TensorRef], expected: Iterable[str]) -> None:
    """ConversionError naming the first tensor found that nothing expects, then the first one expected
    and not found (in `expected`'s order)."""
    expected = list(expected)
    unknown = sorted(set(found) - set(expected))
    if unknown:
        more = f" (and {len(unknown) - 1} more: {unknown[1:6]})" if len(unknown) > 1 else ""
        raise ConversionError(
            f"unknown tensor {found[unknown[0]].key!r} in {found[unknown[0]].file.name}{more}"
        )
    missing = [k for k in expected if k not in found]
    if missing:
        more = f" (and {len(missing) - 1} more: {missing[1:6]})" if len(missing) > 1 else ""
        raise ConversionError(f"missing tensor {missing[0]!r}{more}")


def _check(found: dict[str, TensorRef], entries: list[KeyEntry]) -> None:
    expected = {e.hf_key: e for e in entries}
    check_tensor_names(found, expected)
    for k, e in expected.items():
        if found[k].shape != e.hf_shape:
            raise ConversionError(
                f"tensor {found[k].key!r} has shape {list(found[k].shape)}, expected {list(e.hf_shape)} "
                f"from config.json"
            )


class SafetensorsFiles:
    """Memory maps of tensors in safetensors files, headers read once per file."""

    def __init__(self) -> None:
        self._headers: dict[Path, tuple[int, dict]] = {}

    def _header(self, file: Path) -> tuple[int, dict]:
        """(data start offset, header dict) of a safetensors file."""
        if file not in self._headers:
            with open(file, "rb") as fh:
                header_len = int.from_bytes(fh.read(8), "little")
                self._headers[file] = (8 + header_len, json.loads(fh.read(header_len)))
        return self._headers[file]

    def copy_into(self, t: TensorRef, dst: np.ndarray, block_bytes: int = 64 << 20) -> None:
        """Copies tensor `t` into `dst` (same shape; any dtype, any strides) a block of rows at a time,
        each block through its own short-lived memory map, so the source never becomes resident whole."""
        if t.dtype not in _DTYPES:
            raise ConversionError(f"tensor {t.key!r} has dtype {t.dtype}, which the converter does not read")
        dtype = _DTYPES[t.dtype]
        start, entries = self._header(t.file)
        begin, end = entries[t.key]["data_offsets"]
        if not t.shape or end == begin:
            dst[...] = self.read(t)
            return
        row_bytes = (end - begin) // t.shape[0]
        rows = max(1, block_bytes // max(row_bytes, 1))
        for i in range(0, t.shape[0], rows):
            n = min(rows, t.shape[0] - i)
            raw = np.memmap(t.file, dtype=np.uint8, mode="r", offset=start + begin + i * row_bytes,
                            shape=(n * row_bytes,))  # fmt: skip
            dst[i : i + n] = raw.view(dtype).reshape(n, *t.shape[1:])  # casts (ml_dtypes: bf16 <-> f32)
            del raw

    def read(self, t: TensorRef) -> np.ndarray:
        """A read-only memory map of one tensor: nothing is read until it is used, and its pages are
        not the process's own memory once the map is dropped."""
        if t.dtype not in _DTYPES:
            raise ConversionError(f"tensor {t.key!r} has dtype {t.dtype}, which the converter does not read")
        start, entries = self._header(t.file)
        begin, end = entries[t.key]["data_offsets"]
        if end == begin:
            return np.zeros(t.shape, _DTYPES[t.dtype])
        raw = np.memmap(t.file, dtype=np.uint8, mode="r", offset=start + begin, shape=(end - begin,))
        return raw.view(_DTYPES[t.dtype]).reshape(t.shape)


def _tie_head(found: dict[str, TensorRef], files: SafetensorsFiles, cfg: ThinkerConfig) -> ThinkerConfig:
    """Applies transformers' tie rule to a stored `lm_head.weight` when the config ties the head.

    With `tie_word_embeddings` true and the head stored, transformers ties only when the two tensors
    are equal; otherwise it warns and keeps the stored head. So does this: equal tensors are tied
    (nothing is lost), different ones give an untied config, never a silently dropped tensor.
    """
    if not cfg.text.tie_word_embeddings or "lm_head.weight" not in found:
        return cfg
    head, embed = found["lm_head.weight"], found.get("model.embed_tokens.weight")
    if embed is not None and head.shape == embed.shape and _equal(files.read(head), files.read(embed)):
        del found["lm_head.weight"]
        return cfg
    print(
        "warning: config.json ties the output head (tie_word_embeddings=true) but the checkpoint's "
        "lm_head.weight differs from model.embed_tokens.weight; keeping the stored head untied, as "
        "transformers does",
        file=sys.stderr,
    )
    return dataclasses.replace(cfg, text=dataclasses.replace(cfg.text, tie_word_embeddings=False))


def _equal(a: np.ndarray, b: np.ndarray, rows: int = 4096) -> bool:
    """Exact equality of two memory-mapped arrays, a block of rows at a time (bounded memory)."""
    return all(np.array_equal(a[i : i + rows], b[i : i + rows]) for i in range(0, a.shape[0], rows))


def _leaves(
    found: dict[str, TensorRef],
    entries: list[KeyEntry],
    cfg: ThinkerConfig,
    np_dtype,
    files: SafetensorsFiles,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yields (leaf name, array in the target dtype) one leaf at a time, each built from memory maps of
    its tensors (a stacked leaf from its layers), so one leaf is in memory at once."""
    from tqdm.auto import tqdm

    by_leaf: dict[str, list[KeyEntry]] = {}
    for e in entries:
        by_leaf.setdefault(e.leaf, []).append(e)
    shapes = leaf_shapes(cfg)
    with tqdm(total=len(entries), desc="converting", unit="tensor", disable=None) as bar:
        for leaf, leaf_entries in by_leaf.items():
            bar.set_postfix_str(leaf)
            buf = np.empty(shapes[leaf], np_dtype)
            for e in leaf_entries:
                dst = buf if e.layer is None else buf[e.layer]
                files.copy_into(found[e.hf_key], to_hf_layout(dst, e.layout))  # a view in the HF layout
                bar.update()
            yield leaf, buf
            del buf


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
    """Converts a Hugging Face Qwen2.5-Omni (or thinker-only) or Phi-4-Multimodal checkpoint (either
    released layout, `hr_jax.checkpoint.phi4_import`) into an hr_jax checkpoint.

    `hf_dir`: a local directory, or a Hub repository name (`Qwen/Qwen2.5-Omni-3B`) resolved with
    `hr_jax.checkpoint.hub.hf_snapshot` at `revision` (only the files the converter reads are fetched).
    `dtype`: "bfloat16" (default), "float32" or "float16". `merge_lora`: merge Phi-4's speech LoRA
    (default; False converts its base weights alone). Returns the output directory.
    Raises ConversionError (a ValueError) naming the offending tensor for unknown, missing or
    misshapen tensors, FileExistsError for a non-empty `out_dir` without `overwrite`, and
    `CheckpointNotFound` for a name that is neither a directory nor a reachable Hub repository.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    hf_dir, out = hf_snapshot(hf_dir, revision).absolute(), Path(out_dir).absolute()
    config_file = hf_dir / "config.json"
    if not config_file.is_file():
        raise ConversionError(f"{config_file} not found: not a Hugging Face checkpoint directory")
    hf_config = json.loads(config_file.read_text())
    from models.phi4mm.hf_config import is_phi4

    if is_phi4(hf_config):
        from hr_jax.checkpoint.phi4_import import convert_phi4

        return convert_phi4(hf_dir, out, hf_config, dtype, overwrite, merge_lora)
    if "text_config" not in hf_config and "thinker_config" not in hf_config:
        raise ConversionError(
            f"{config_file}: model_type={hf_config.get('model_type')!r} is neither Qwen2.5-Omni "
            f"(text_config / "
            f"thinker_config) nor Phi-4-Multimodal (phi4mm, phi4_multimodal)"
        )
    with atomic_dir(out, overwrite) as tmp:
        cfg = config_from_hf(hf_config)
        feature_config = FeatureConfig.from_dir(hf_dir)  # refuses a preprocessor config we cannot follow
        if feature_config is not None and feature_config.feature_size != cfg.audio.num_mel_bins:
            raise ConversionError(
                f"preprocessor_config.json feature_size={feature_config.feature_size} but the audio encoder "
                f"takes num_mel_bins={cfg.audio.num_mel_bins}"
            )
        omni = "thinker_config" in hf_config
        found = _scan(hf_dir, omni)
        if not omni and any(t.key.startswith("thinker.") for t in found.values()):
            omni = True  # thinker.-prefixed keys with a thinker-only config: treat as the Omni layout
            found = _scan(hf_dir, omni)
        files = SafetensorsFiles()
        cfg = _tie_head(found, files, cfg)
        entries = hf_key_map(cfg)
        _check(found, entries)
        save_leaves(
            _leaves(found, entries, cfg, DTYPES[dtype], files), cfg, tmp, dtype=dtype, source=str(hf_dir)
        )
        shutil.copyfile(config_file, tmp / HF_CONFIG_FILE)
        for name in AUX_FILES:
            if (hf_dir / name).is_file():
                shutil.copyfile(hf_dir / name, tmp / name)
    return out
