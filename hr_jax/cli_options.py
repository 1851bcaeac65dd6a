"""Options of every command that loads a model: `--ckpt`, `--revision`, `--dtype`, `--model-parallel`,
and how the engine runs it, `--attention` and `--decode-layout`. Their defaults come from
`HR_JAX_ATTENTION` / `HR_JAX_DECODE_LAYERS`, read here and nowhere else."""

from __future__ import annotations

import argparse
import os
from typing import Any

from hr_jax.engine_options import EngineOptions
from models.attention import ATTENTION_IMPLS
from models.decoder import DECODE_LAYOUTS

NO_TRUNCATION_HELP = (
    "take audio longer than the feature extractor's length (Qwen2.5-Omni: 300 s) whole, up to the "
    "decoder's position range (about 21 min), as the processor does with truncation=False; without it, "
    "such audio is refused (generate) or cut (eval, as the official pipelines do)"
)
ATTENTION_ENV = "HR_JAX_ATTENTION"
DECODE_LAYOUT_ENV = "HR_JAX_DECODE_LAYERS"

CKPT_HELP = (
    "converted checkpoint directory, a Hugging Face Hub name (Qwen/Qwen2.5-Omni-3B: downloaded and "
    "converted once into $HR_JAX_CACHE), or demo (the shipped model)"
)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _env_default(name: str, choices: tuple[str, ...]) -> str:
    """An option's default from the environment variable `name` ("auto" when unset), checked."""
    value = os.environ.get(name, "auto")
    if value not in choices:
        raise ValueError(f"{name}={value!r}; choose from {', '.join(choices)}")
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
    parser.add_argument(
        "--attention",
        choices=ATTENTION_IMPLS,
        default=_env_default(ATTENTION_ENV, ATTENTION_IMPLS),
        help=f"prefill attention kernel (default ${ATTENTION_ENV} or auto: cuDNN on GPU for bf16, splash "
        "on TPU, streaming otherwise)",
    )
    parser.add_argument(
        "--decode-layout",
        choices=DECODE_LAYOUTS,
        default=_env_default(DECODE_LAYOUT_ENV, DECODE_LAYOUTS),
        help=f"how decode runs its layers (default ${DECODE_LAYOUT_ENV} or auto: unrolled)",
    )


def engine_options(args: argparse.Namespace) -> EngineOptions:
    """The engine options `add_model_options`' arguments name."""
    return EngineOptions(attention=args.attention, decode_layout=args.decode_layout)


def load_model(args: argparse.Namespace) -> Any:
    """The model `add_model_options`' arguments name, on a `("data", "model")` mesh of the local devices."""
    import hr_jax

    mesh = hr_jax.make_mesh(model=args.model_parallel)
    return hr_jax.load(
        args.ckpt, dtype=args.dtype, revision=args.revision, mesh=mesh, options=engine_options(args)
    )
