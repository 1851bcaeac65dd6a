"""hr_jax: the Qwen2.5-Omni thinker in JAX with HeadRouter audio-token pruning.

Example::

    model = hr_jax.load("ckpt/")  # converted with `python -m convert.hf_to_jax`
    text = hr_jax.generate(model, "clip.wav", 0.6, prompt="What is said?")

Calibration is the module `hr_jax.calibrate` (`from hr_jax.calibrate import calibrate`): it runs the
engine over evaluation prompts, so it sits above this package's face, not in it.
"""

import hr_jax.transformers_advisory  # noqa: F401  # isort: split - before anything imports transformers
from hr_jax.batch import Batch, make_batch
from hr_jax.engine import (
    GenerateOutput,
    Prefill,
    PruningSpec,
    SamplingSpec,
    forward,
    generate,
    generate_batch,
    generate_with,
    prefill,
)
from hr_jax.engine_options import EngineOptions
from hr_jax.model import Model, load
from hr_jax.pruning import PRUNING_METHODS as METHODS
from hr_jax.pruning import Router
from hr_jax.sharding import make_mesh

__all__ = [
    "METHODS",
    "Batch",
    "EngineOptions",
    "GenerateOutput",
    "Model",
    "Prefill",
    "PruningSpec",
    "Router",
    "SamplingSpec",
    "forward",
    "generate",
    "generate_batch",
    "generate_with",
    "load",
    "make_batch",
    "make_mesh",
    "prefill",
]
