"""Evaluation: benchmark loaders, prompts and answer parsing, metrics, the batched data-parallel
runner, paper-layout reports and figures. See ``hr_jax/eval/README.md``.

Modules: :mod:`~hr_jax.eval.tasks` (task registry), :mod:`~hr_jax.eval.datasets` (loaders),
:mod:`~hr_jax.eval.audio_io`, :mod:`~hr_jax.eval.prompts`, :mod:`~hr_jax.eval.metrics`,
:mod:`~hr_jax.eval.results` (JSONL files), :mod:`~hr_jax.eval.runner` (``run_eval``),
:mod:`~hr_jax.eval.report`, :mod:`~hr_jax.eval.plots`, :mod:`~hr_jax.eval.cli`.
These modules import the engine (and JAX's device APIs) only inside the functions that run
it, so loaders, metrics and reports work without touching a device.
"""
