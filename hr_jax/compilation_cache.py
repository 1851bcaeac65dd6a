"""JAX's persistent compilation cache, turned on by whoever starts the process (the CLI, the training
entry point, the test session), never as a side effect of a library call.

A program compiled once is written under the cache directory and read back by any later process that
compiles the same program, so a second `hr-jax eval` over the same buckets compiles nothing. A directory
the caller already chose (`JAX_COMPILATION_CACHE_DIR`, or `jax.config` set before) is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

# Every program is worth keeping: on XLA:CPU a tiny program still takes 0.1-1 s to compile, and a
# long-audio sweep compiles many of them.
MIN_COMPILE_SECONDS = 0.0


def default_cache_dir() -> Path:
    """`$HR_JAX_CACHE/jax` (default `~/.cache/hr_jax/jax`)."""
    from hr_jax.checkpoint.hub import cache_root

    return cache_root() / "jax"


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> Path:
    """Turns on the persistent compilation cache for this process and returns its directory.

    directory: where programs are kept; None keeps a cache the caller configured already (its
    directory and thresholds untouched), else uses `default_cache_dir()`. Subprocesses inherit it
    through `JAX_COMPILATION_CACHE_DIR`."""
    if directory is None and jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    path = Path(directory or default_cache_dir()).expanduser().absolute()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(path)
    return path
