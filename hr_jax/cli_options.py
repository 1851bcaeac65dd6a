"""Options of every command that loads a model: `--ckpt`, `--revision`, `--dtype`, `--model-parallel`."""

from __future__ import annotations

import argparse
from typing import Any

CKPT_HELP = (
    "converted checkpoint directory, a Hugging Face Hub name (Qwen/Qwen2.5-Omni-3B: downloaded and "
    "converted once into $HR_JAX_CACHE), or demo (the shipped model)"
)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Adds `--ckpt`, `--revision`, `--dtype` and `--model-parallel` to `parser`."""
    parser.add_argument("--ckpt", required=True, help=CKPT_HELP)
    parser.add_argument("--revision", default=None, help="Hub branch, tag or commit of a Hub name")
    parser.add_argument("--dtype", default=None, help="bfloat16 or float32 (default: as converted)")
    parser.add_argument(
        "--model-parallel",
        type=_positive,
        default=1,
        metavar="N",
        help="tensor-parallel ways: a mesh of (local devices / N) data x N model (default 1)",
    )


def load_model(args: argparse.Namespace) -> Any:
    """The model `add_model_options`' arguments name, on a `("data", "model")` mesh of the local devices."""
    import hr_jax

    mesh = hr_jax.make_mesh(model=args.model_parallel)
    return hr_jax.load(args.ckpt, dtype=args.dtype, revision=args.revision, mesh=mesh)
