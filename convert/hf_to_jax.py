"""Hugging Face Qwen2.5-Omni (thinker) safetensors -> hr_jax orbax checkpoint, from the command line.

    python -m convert.hf_to_jax --hf-dir DIR --out DIR [--dtype bfloat16|float32] [--overwrite]
    python -m convert.hf_to_jax --hf-dir Qwen/Qwen2.5-Omni-3B --out DIR [--revision REV]

`--hf-dir` is a local directory or a Hugging Face Hub name; a name is fetched with
`huggingface_hub.snapshot_download` (only the files the converter reads; `HF_HUB_OFFLINE=1` reads the
Hub cache only).

The conversion itself is `hr_jax.checkpoint.convert` (see `hr_jax.checkpoint.hf_import`).
"""

from __future__ import annotations

import argparse
import sys

from hr_jax.checkpoint import DTYPES, CheckpointNotFound, ConversionError, convert

__all__ = ["ConversionError", "convert", "main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m convert.hf_to_jax", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--hf-dir",
        required=True,
        help="Hugging Face checkpoint directory, or a Hub name (Qwen/Qwen2.5-Omni-3B)",
    )
    p.add_argument("--revision", default=None, help="Hub branch, tag or commit to pin (Hub names only)")
    p.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    p.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES), help="parameter dtype (bfloat16)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument(
        "--no-lora",
        action="store_true",
        help="Phi-4-Multimodal: convert the base weights without merging the speech LoRA",
    )
    args = p.parse_args(argv)
    try:
        out = convert(
            args.hf_dir,
            args.out,
            dtype=args.dtype,
            overwrite=args.overwrite,
            revision=args.revision,
            merge_lora=not args.no_lora,
        )
    # UnsupportedConfig is a ValueError; CheckpointNotFound a FileNotFoundError.
    except (ConversionError, CheckpointNotFound, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
