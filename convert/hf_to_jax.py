"""Hugging Face Qwen2.5-Omni (thinker) safetensors -> hr_jax orbax checkpoint.

    python -m convert.hf_to_jax --hf-dir DIR --out DIR [--dtype bfloat16|float32] [--overwrite]

Accepts full Omni checkpoints (tensors under `thinker.`; `talker.*` and `token2wav.*` skipped) and
thinker-only ones; the vision tower (`visual.*`) is skipped as well. Every other tensor must map to a
parameter through `hr_jax.checkpoint.HF_KEY_MAP` and every parameter must be filled, with the shape the
config implies; otherwise a `ConversionError` names the key. All of that is checked from the
safetensors headers before any tensor data is read. Tensors are then read lazily, file by file, and
written into preallocated stacked arrays of the target dtype, so peak memory is about one copy of the
model in that dtype.

The output (orbax `params/`, `hr_jax_config.json`, `hf_config.json`, tokenizer/chat-template/
preprocessor/generation-config files) is written into a temporary sibling directory and moved to
`--out` with `os.replace` at the end; on failure nothing is left behind.
"""

from __future__ import annotations

import argparse
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

from hr_jax.checkpoint import (
    HF_CONFIG_FILE,
    KeyEntry,
    from_hf_layout,
    hf_key_map,
    leaf_shapes,
    params_from_leaves,
    save_params,
)
from models.config import ThinkerConfig

SKIP_PREFIXES = ("talker.", "token2wav.", "visual.")
AUX_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
    "added_tokens.json", "chat_template.json", "chat_template.jinja", "preprocessor_config.json",
    "generation_config.json",
)  # fmt: skip
DTYPES = {"bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "float16": np.float16}
# safetensors dtypes numpy cannot represent natively, read through ml_dtypes.
_ML_DTYPES = {
    "BF16": ml_dtypes.bfloat16,
    "F8_E4M3": ml_dtypes.float8_e4m3fn,
    "F8_E5M2": ml_dtypes.float8_e5m2,
}


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


def _safetensors_files(hf_dir: Path) -> list[Path]:
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


class _Tensor:
    def __init__(self, file: Path, key: str, shape: tuple[int, ...], dtype: str):
        self.file, self.key, self.shape, self.dtype = file, key, shape, dtype


def _scan(hf_dir: Path, omni: bool) -> dict[str, _Tensor]:
    """{thinker-only name: tensor location} from the safetensors headers (no tensor data read)."""
    from safetensors import safe_open

    found: dict[str, _Tensor] = {}
    for file in _safetensors_files(hf_dir):
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
                found[name] = _Tensor(file, key, tuple(sl.get_shape()), sl.get_dtype())
    return found


def _check(found: dict[str, _Tensor], entries: list[KeyEntry], cfg: ThinkerConfig) -> None:
    expected = {e.hf_key: e for e in entries}
    if cfg.text.tie_word_embeddings:
        found.pop("lm_head.weight", None)  # tied: transformers ignores a stored copy as well
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
    for k, e in expected.items():
        if found[k].shape != e.hf_shape:
            raise ConversionError(
                f"tensor {found[k].key!r} has shape {list(found[k].shape)}, expected {list(e.hf_shape)} "
                f"from config.json"
            )


def _header(file: Path) -> tuple[int, dict]:
    """(data start offset, header dict) of a safetensors file."""
    with open(file, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        return 8 + header_len, json.loads(fh.read(header_len))


def _read(f, t: _Tensor, header: tuple[int, dict] | None) -> np.ndarray:
    """One tensor as a NumPy array (bf16/fp8 through a memory map of the file and ml_dtypes)."""
    if t.dtype not in _ML_DTYPES:
        return f.get_tensor(t.key)
    start, entries = header if header is not None else _header(t.file)
    begin, end = entries[t.key]["data_offsets"]
    raw = np.memmap(t.file, dtype=np.uint8, mode="r", offset=start + begin, shape=(end - begin,))
    return raw.view(_ML_DTYPES[t.dtype]).reshape(t.shape)


def _load(found: dict[str, _Tensor], entries: list[KeyEntry], cfg: ThinkerConfig, np_dtype):
    from safetensors import safe_open
    from tqdm.auto import tqdm

    buffers = {name: np.empty(shape, np_dtype) for name, shape in leaf_shapes(cfg).items()}
    by_file: dict[Path, list[KeyEntry]] = {}
    for e in entries:
        by_file.setdefault(found[e.hf_key].file, []).append(e)
    with tqdm(total=len(entries), desc="converting", unit="tensor", disable=None) as bar:
        for file, file_entries in by_file.items():
            bar.set_postfix_str(file.name)
            header = _header(file) if any(found[e.hf_key].dtype in _ML_DTYPES for e in file_entries) else None
            with safe_open(str(file), framework="numpy") as f:
                for e in file_entries:
                    x = from_hf_layout(_read(f, found[e.hf_key], header), e.layout)
                    dst = buffers[e.leaf] if e.layer is None else buffers[e.leaf][e.layer]
                    dst[...] = x  # casts to the target dtype (ml_dtypes handles bf16 <-> f16/f32)
                    del x
                    bar.update()
    return params_from_leaves(cfg, buffers)


@contextmanager
def _atomic_dir(out: Path, overwrite: bool) -> Iterator[Path]:
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
    hf_dir: str | Path, out_dir: str | Path, dtype: str = "bfloat16", overwrite: bool = False
) -> Path:
    """Converts a Hugging Face Qwen2.5-Omni (or thinker-only) directory into an hr_jax checkpoint.

    `dtype`: "bfloat16" (default), "float32" or "float16". Returns the output directory.
    Raises ConversionError (a ValueError) naming the offending tensor for unknown, missing or
    misshapen tensors, FileExistsError for a non-empty `out_dir` without `overwrite`.
    """
    hf_dir, out = Path(hf_dir).absolute(), Path(out_dir).absolute()
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    with _atomic_dir(out, overwrite) as tmp:
        config_file = hf_dir / "config.json"
        if not config_file.is_file():
            raise ConversionError(f"{config_file} not found: not a Hugging Face checkpoint directory")
        hf_config = json.loads(config_file.read_text())
        cfg = ThinkerConfig.from_hf(hf_config)
        omni = "thinker_config" in hf_config
        entries = hf_key_map(cfg)
        found = _scan(hf_dir, omni)
        if not omni and any(t.key.startswith("thinker.") for t in found.values()):
            omni = True  # thinker.-prefixed keys with a thinker-only config: treat as the Omni layout
            found = _scan(hf_dir, omni)
        _check(found, entries, cfg)
        params = _load(found, entries, cfg, DTYPES[dtype])
        save_params(params, cfg, tmp, dtype=dtype, source=str(hf_dir))
        del params
        shutil.copyfile(config_file, tmp / HF_CONFIG_FILE)
        for name in AUX_FILES:
            if (hf_dir / name).is_file():
                shutil.copyfile(hf_dir / name, tmp / name)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m convert.hf_to_jax", description=__doc__.split("\n\n")[0])
    p.add_argument("--hf-dir", required=True, help="Hugging Face Qwen2.5-Omni checkpoint directory")
    p.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    p.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES), help="parameter dtype (bfloat16)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    args = p.parse_args(argv)
    try:
        out = convert(args.hf_dir, args.out, dtype=args.dtype, overwrite=args.overwrite)
    except (ConversionError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
