"""Silences one advisory of transformers, and nothing else.

transformers, imported without PyTorch, logs "PyTorch was not found. Models won't be available and only
tokenizers, configuration and file/data utilities can be used." hr_jax uses transformers only for
tokenizers, configs and mel filters, so on a bare install that line tells the user something false about
hr_jax. A filter on transformers' logger drops that one record; every other warning still shows.
`hr_jax/__init__.py` imports this module first, which installs the filter.
"""

from __future__ import annotations

import logging

ADVISORY = "PyTorch was not found."


class _DropTorchAdvisory(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVISORY)


def silence_torch_advisory() -> None:
    """Installs the filter on the "transformers" logger (idempotent; before transformers is imported)."""
    logger = logging.getLogger("transformers")
    if not any(isinstance(f, _DropTorchAdvisory) for f in logger.filters):
        logger.addFilter(_DropTorchAdvisory())


silence_torch_advisory()
