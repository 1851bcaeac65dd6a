"""Reading a Hugging Face safetensors checkpoint: what every family's converter shares.

A family's `read_hf` (`models.family.ModelFamily`) scans the safetensors headers (`scan_headers`),
checks every tensor name and shape against what its config implies (`check_tensor_names`,
`check_shapes`), applies transformers' head-tying rule (`tie_head`) and returns an `HFCheckpoint`
whose `leaves` fill one parameter leaf at a time from memory maps (`SafetensorsFiles`). Writing the
result (atomically, with the tokenizer and preprocessor files) is `hr_jax.checkpoint.convert`'s job,
the same for every family.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

# safetensors dtype names -> little-endian NumPy dtypes (bf16 / fp8 through ml_dtypes).
_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16), "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}  # fmt: skip


class ConversionError(ValueError):
    """The Hugging Face checkpoint does not match the model its config describes."""


@dataclasses.dataclass(frozen=True)
class TensorRef:
    """Where one tensor lives: its file, its name there, its shape and safetensors dtype."""

    file: Path
    key: str
    shape: tuple[int, ...]
    dtype: str


@dataclasses.dataclass
class HFCheckpoint:
    """A Hugging Face checkpoint read and checked by a family, ready to be written.

    cfg: the family's config; leaves: `(np_dtype) -> iterator of (leaf name, array)`, one leaf in
    memory at a time; source: where the weights came from (recorded in the checkpoint); note: what
    was skipped or merged, said once the checkpoint is written."""

    cfg: Any
    leaves: Callable[[Any], Iterator[tuple[str, np.ndarray]]]
    source: str
    note: str | None = None


def safetensors_files(hf_dir: Path) -> list[Path]:
    """The checkpoint's safetensors files: those its index lists, or every `*.safetensors`."""
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


def headers(files: Iterable[Path]) -> Iterator[TensorRef]:
    """Every tensor of the files, from the safetensors headers (no tensor data read)."""
    from safetensors import safe_open

    for file in files:
        with safe_open(str(file), framework="numpy") as f:
            for key in f.keys():
                sl = f.get_slice(key)
                yield TensorRef(file, key, tuple(sl.get_shape()), sl.get_dtype())


def add_unique(found: dict[str, TensorRef], name: str, ref: TensorRef) -> None:
    """`found[name] = ref`; a ConversionError when two stored tensors come to the same name."""
    if name in found:
        raise ConversionError(f"tensor {ref.key!r} appears twice ({found[name].file.name}, {ref.file.name})")
    found[name] = ref


def scan_headers(files: Iterable[Path], rename: Callable[[str], str | None]) -> dict[str, TensorRef]:
    """{renamed key: tensor location} from the safetensors headers; `rename` returns None for a tensor
    the model does not use. A name found twice is an error."""
    found: dict[str, TensorRef] = {}
    for ref in headers(files):
        name = rename(ref.key)
        if name is not None:
            add_unique(found, name, ref)
    return found


def check_tensor_names(found: Mapping[str, TensorRef], expected: Iterable[str]) -> None:
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


def check_shapes(found: Mapping[str, TensorRef], expected: Mapping[str, tuple[int, ...]]) -> None:
    """ConversionError naming the first tensor whose stored shape is not the one the config implies."""
    for name, shape in expected.items():
        if found[name].shape != tuple(shape):
            raise ConversionError(
                f"tensor {found[name].key!r} has shape {list(found[name].shape)}, expected {list(shape)} "
                "from config.json"
            )


def check_feature_size(feature_size: int | None, expected: int, field: str) -> None:
    """The preprocessor's mel bins must be what the audio encoder takes (`field` names its config key)."""
    if feature_size is not None and feature_size != expected:
        raise ConversionError(
            f"preprocessor_config.json feature_size={feature_size} but the audio encoder takes "
            f"{field}={expected}"
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

    def _span(self, t: TensorRef) -> tuple[np.dtype, int, int]:
        if t.dtype not in _DTYPES:
            raise ConversionError(f"tensor {t.key!r} has dtype {t.dtype}, which the converter does not read")
        start, entries = self._header(t.file)
        begin, end = entries[t.key]["data_offsets"]
        return _DTYPES[t.dtype], start + begin, end - begin

    def copy_into(self, t: TensorRef, dst: np.ndarray, block_bytes: int = 64 << 20) -> None:
        """Copies tensor `t` into `dst` (same shape; any dtype, any strides) a block of rows at a time,
        each block through its own short-lived memory map, so the source never becomes resident whole."""
        dtype, offset, size = self._span(t)
        if not t.shape or size == 0:
            dst[...] = self.read(t)
            return
        row_bytes = size // t.shape[0]
        rows = max(1, block_bytes // max(row_bytes, 1))
        for i in range(0, t.shape[0], rows):
            n = min(rows, t.shape[0] - i)
            raw = np.memmap(t.file, dtype=np.uint8, mode="r", offset=offset + i * row_bytes,
                            shape=(n * row_bytes,))  # fmt: skip
            dst[i : i + n] = raw.view(dtype).reshape(n, *t.shape[1:])  # casts (ml_dtypes: bf16 <-> f32)
            del raw

    def read(self, t: TensorRef) -> np.ndarray:
        """A read-only memory map of one tensor: nothing is read until it is used, and its pages are
        not the process's own memory once the map is dropped."""
        dtype, offset, size = self._span(t)
        if size == 0:
            return np.zeros(t.shape, dtype)
        raw = np.memmap(t.file, dtype=np.uint8, mode="r", offset=offset, shape=(size,))
        return raw.view(dtype).reshape(t.shape)


def _equal(a: np.ndarray, b: np.ndarray, rows: int = 4096) -> bool:
    """Exact equality of two memory-mapped arrays, a block of rows at a time (bounded memory)."""
    return all(np.array_equal(a[i : i + rows], b[i : i + rows]) for i in range(0, a.shape[0], rows))


def tie_head(cfg: Any, found: dict[str, TensorRef], files: SafetensorsFiles) -> Any:
    """Applies transformers' tie rule to a stored `lm_head.weight` when the config ties the head.

    With `tie_word_embeddings` true and the head stored, transformers ties only when the two tensors
    are equal; otherwise it warns and keeps the stored head. So does this: equal tensors are tied
    (`lm_head.weight` leaves `found`; nothing is lost), different ones give an untied config, never a
    silently dropped tensor. `cfg`: any family's config (`cfg.text.tie_word_embeddings`)."""
    head, embed = found.get("lm_head.weight"), found.get("model.embed_tokens.weight")
    if not cfg.text.tie_word_embeddings or head is None:
        return cfg
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


def write_safetensors(
    tensors: Iterable[tuple[str, np.ndarray]], out: Path, max_shard_bytes: int = 4 << 30
) -> None:
    """Writes `(name, array)` pairs as `model.safetensors`, or as shards of at most `max_shard_bytes`
    with `model.safetensors.index.json` (the layout `save_pretrained` writes)."""
    from safetensors.numpy import save_file

    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, x in tensors:
        x = np.ascontiguousarray(x)
        if size and size + x.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = x
        size += x.nbytes
    meta = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], str(out / "model.safetensors"), metadata=meta)
        return
    weight_map, total = {}, 0
    for s, part in enumerate(shards):
        name = f"model-{s + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(part, str(out / name), metadata=meta)
        for k, x in part.items():
            weight_map[k] = name
            total += x.nbytes
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
