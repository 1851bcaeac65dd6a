"""hr_jax: the Qwen2.5-Omni thinker in JAX with HeadRouter audio-token pruning.

Example::

    model = hr_jax.load("ckpt/")  # converted with `python -m convert.hf_to_jax`
    text = hr_jax.generate(model, "clip.wav", 0.6, prompt="What is said?")
"""

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
from hr_jax.model import Model, load
from hr_jax.pruning import PRUNING_METHODS as METHODS
from hr_jax.pruning import Router
from hr_jax.sharding import make_mesh

__all__ = [
    "METHODS",
    "Batch",
    "GenerateOutput",
    "Model",
    "Prefill",
    "PruningSpec",
    "Router",
    "SamplingSpec",
    "calibrate",
    "forward",
    "generate",
    "generate_batch",
    "generate_with",
    "load",
    "make_batch",
    "make_mesh",
    "prefill",
]


def calibrate(*args, **kwargs):
    """See `hr_jax.calibrate.calibrate`."""
    from hr_jax.calibrate import calibrate as _calibrate

    return _calibrate(*args, **kwargs)
