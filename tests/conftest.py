"""Shared fixtures: tiny random Qwen2.5-Omni thinker checkpoints built with transformers.

Nothing is downloaded: each checkpoint is created from a config with random weights, written in
the Hugging Face layout, and converted with the real converter once per test session.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the whole session, set before JAX starts so that every process
# the tests start inherits it: a program compiled once (by this process, an xdist worker, or a CLI or
# multi-device subprocess) is read back by the others. Programs under 0.2 s of compile are not worth a
# write; the directory outlives the session (a rerun compiles almost nothing) and is trimmed to its cap.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "hr_jax_tests_jax_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 << 30))
# The tests' programs are tiny and each is run a few times: XLA's time goes to compiling them. LLVM at
# -O0 compiles them about a third faster (the HLO passes, and so the numerics, are the same), and one
# thread per process lets two xdist workers share two cores without contention (measured on
# tests/test_pruning.py, 2 cores: 97 s -> 68 s).
# Processes with several fake devices keep Eigen's threads: their collectives block a thread of that
# pool while they wait for the other devices. XLA sizes the pool max(cores, devices) = 4 here, and a
# device may have two collectives in flight, so four blocked threads can starve the one device whose
# turn it is (XLA aborts after 40 s; seen in CI on tests/test_tensor_parallel.py: all four workers in
# rendezvous, device 0 in two of them, device 3 in none). `PJRT_NPROC` (read by XLA's
# DefaultThreadPoolSize) gives those processes four threads a device.
OPT_FLAG, ONE_THREAD_FLAG = "--xla_backend_optimization_level=0", "--xla_cpu_multi_thread_eigen=false"
_USER_XLA_FLAGS = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = f"{_USER_XLA_FLAGS} {OPT_FLAG} {ONE_THREAD_FLAG}".strip()


def subprocess_env(devices: int | None = None, **extra: str) -> dict[str, str]:
    """The environment of a process a test starts: this session's (its compilation cache and XLA
    flags), on the CPU, with `devices` fake CPU devices when given, and `extra`."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **extra}
    if devices is not None:
        env["XLA_FLAGS"] = f"{_USER_XLA_FLAGS} {OPT_FLAG} --xla_force_host_platform_device_count={devices}"
        env["PJRT_NPROC"] = str(4 * devices)
    return env


import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Two decoder shapes: GQA 2:1 with 3 layers, and GQA 6:1 (one KV head) with 4 layers.
TINY_CONFIGS = {
    "gqa2": {},
    "gqa6": {"num_attention_heads": 6, "num_key_value_heads": 1, "head_dim": 8, "num_hidden_layers": 4},
}


_BUILT: dict[str, tuple[str, str]] = {}  # each tiny checkpoint is built once per session


def _build(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[str, str]:
    from convert.hf_to_jax import convert
    from hr_jax.testing.checkpoints import build_tiny_checkpoint

    if name not in _BUILT:
        root = tmp_path_factory.mktemp(f"tiny_{name}")
        hf = build_tiny_checkpoint(root / "hf", config_overrides=TINY_CONFIGS[name], seed=len(name))
        _BUILT[name] = str(hf), str(convert(hf, root / "jax", dtype="float32"))
    return _BUILT[name]


@pytest.fixture(scope="session", params=sorted(TINY_CONFIGS))
def tiny_pair(request, tmp_path_factory) -> tuple[str, str]:
    """(Hugging Face dir, converted dir) for each tiny configuration."""
    return _build(tmp_path_factory, request.param)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> tuple[str, str]:
    """(Hugging Face dir, converted dir) of the default tiny configuration."""
    return _build(tmp_path_factory, "gqa2")


@pytest.fixture(scope="session")
def tiny_phi4(tmp_path_factory) -> tuple[Path, Path]:
    """(Hugging Face dir in the transformers-native layout with its peft speech adapter, converted
    float32 dir) of the tiny Phi-4-Multimodal (`hr_jax.testing.phi4`, seed 0), built once per session."""
    pytest.importorskip("peft")
    from hr_jax.checkpoint import convert
    from hr_jax.testing.phi4 import build_tiny_phi4

    root = tmp_path_factory.mktemp("tiny_phi4")
    native = build_tiny_phi4(root / "native", "native")
    return native, convert(native, root / "jax", dtype="float32")


@pytest.fixture(scope="session")
def tiny_model(tiny_ckpt):
    from hr_jax.model import load

    return load(tiny_ckpt[1])


@pytest.fixture(scope="session")
def tiny_reference(tiny_ckpt):
    from hr_jax.testing.checkpoints import load_reference

    return load_reference(tiny_ckpt[0])


def waveform(seconds: float, seed: int = 0) -> np.ndarray:
    """A deterministic test waveform: a few harmonics plus noise, 16 kHz float32."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * 16000))
    t = np.arange(n) / 16000.0
    f0 = 110.0 * (1 + seed % 5)
    x = sum(np.sin(2 * np.pi * f0 * (h + 1) * t) / (h + 1) for h in range(4))
    return (0.2 * x + 0.05 * rng.standard_normal(n)).astype(np.float32)


RTOL = 1e-5  # float32 parity with transformers, relative to the reference's largest magnitude


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def torch_batch(batch) -> dict:
    """A `hr_jax.batch.Batch` as the torch tensors transformers' thinker takes."""
    import torch

    return {k: torch.from_numpy(np.asarray(v)).long() if "mask" in k or "ids" in k else torch.from_numpy(v)
            for k, v in batch.to_dict().items()}  # fmt: skip


def reference_logits(ref, batch) -> np.ndarray:
    """transformers' logits `[B, L, vocab]` for a batch."""
    import torch

    with torch.no_grad():
        return ref(**torch_batch(batch)).logits.float().numpy()
