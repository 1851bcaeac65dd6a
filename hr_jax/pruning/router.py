"""HeadRouter router files: the calibrated numbers a HeadRouter prefill reads.

A router file is JSON with exactly these keys (the fields of ``Router``)::

    {"model": "Qwen/Qwen2.5-Omni-3B", "prune_layer": 2, "num_heads": 16,
     "w_sem": [...16 floats...], "w_aco": [...16 floats...],
     "mu": {"semantic": 0.05, "uniform": 0.08, "acoustic": 0.11},
     "sigma": 0.02, "prefilter": 2.0}

``prefilter`` is the frame pre-filter factor lambda; ``null`` (or ``Infinity`` on input) disables it.
``RouterArrays`` hands the numbers to the jitted prefill as traced arrays (``hr_jax.pruning.headrouter``
holds the math that reads them; ``hr_jax.calibrate`` measures them).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from hr_jax.pruning.methods import is_routed, method

CATEGORIES = ("semantic", "uniform", "acoustic")  # profile order everywhere (alpha, mu)


class RouterError(ValueError):
    """A router file or router value is invalid."""


# --------------------------------------------------------------------------------------------------
# Router
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Centers(Mapping):
    """Profile centres mu; a read-only, hashable mapping with keys semantic/uniform/acoustic."""

    semantic: float
    uniform: float
    acoustic: float

    def __getitem__(self, key: str) -> float:
        if key not in CATEGORIES:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(CATEGORIES)

    def __len__(self) -> int:
        return 3

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.semantic, self.uniform, self.acoustic)


def _fail(msg: str) -> None:
    raise RouterError(msg)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        _fail(f"{name} must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        _fail(f"{name} must be finite, got {out!r}")
    return out


def _as_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        _fail(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        _fail(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _as_profile(name: str, value: Any, num_heads: int) -> tuple[float, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        _fail(f"{name} must be a list of {num_heads} numbers, got {value!r}")
    out = tuple(_as_float(f"{name}[{i}]", v) for i, v in enumerate(value))
    if len(out) != num_heads:
        _fail(f"{name} has {len(out)} weights, expected num_heads={num_heads}")
    neg = [i for i, v in enumerate(out) if v < 0]
    if neg:
        _fail(f"{name} has negative weights at heads {neg}")
    if sum(out) <= 0:
        _fail(f"{name} weights sum to 0; a profile needs some positive weight")
    return out


def _as_centers(value: Any) -> Centers:
    if isinstance(value, Centers):
        return value
    if not isinstance(value, Mapping):
        _fail(f"mu must be an object with keys {list(CATEGORIES)}, got {value!r}")
    missing = [c for c in CATEGORIES if c not in value]
    extra = sorted(str(key) for key in value if key not in CATEGORIES)
    if missing or extra:
        _fail(f"mu keys must be exactly {list(CATEGORIES)}; missing {missing}, unexpected {extra}")
    return Centers(*(_as_float(f"mu.{c}", value[c]) for c in CATEGORIES))


def _as_prefilter(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        _fail(f"prefilter must be a number >= 1 or null, got {value!r}")
    out = float(value)
    if math.isnan(out):
        _fail("prefilter must be a number >= 1 or null, got NaN")
    if math.isinf(out) and out > 0:
        return None  # lambda = inf disables the pre-filter; stored as null
    if out < 1:
        _fail(f"prefilter lambda must be >= 1 (it keeps top-k among ceil(lambda k) tokens), got {out}")
    return out


@dataclasses.dataclass(frozen=True)
class Router:
    """A HeadRouter router: the contents of a router file. Frozen and hashable (usable as a jit static).

    Fields are exactly the JSON keys. ``mu`` is a ``Centers`` mapping (semantic, uniform, acoustic);
    ``prefilter`` is lambda, None when disabled. Construction validates and normalises every field
    (ints, floats, tuples), raising ``RouterError`` with the offending key.
    """

    model: str
    prune_layer: int
    num_heads: int
    w_sem: tuple[float, ...]
    w_aco: tuple[float, ...]
    mu: Centers
    sigma: float
    prefilter: float | None = 2.0

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model:
            _fail(f"model must be a non-empty string, got {self.model!r}")
        # prune_layer M >= 1: the probe reads layer M - 1.
        set_ = object.__setattr__
        set_(self, "prune_layer", _as_int("prune_layer", self.prune_layer, 1))
        set_(self, "num_heads", _as_int("num_heads", self.num_heads, 1))
        set_(self, "w_sem", _as_profile("w_sem", self.w_sem, self.num_heads))
        set_(self, "w_aco", _as_profile("w_aco", self.w_aco, self.num_heads))
        set_(self, "mu", _as_centers(self.mu))
        sigma = _as_float("sigma", self.sigma)
        if sigma <= 0:
            _fail(f"sigma must be > 0, got {sigma}")
        set_(self, "sigma", sigma)
        set_(self, "prefilter", _as_prefilter(self.prefilter))

    # ---- construction / IO ----

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Router:
        if not isinstance(data, Mapping):
            _fail(f"a router must be a JSON object, got {type(data).__name__}")
        fields = [f.name for f in dataclasses.fields(cls)]
        missing = [f for f in fields if f not in data]
        extra = sorted(str(key) for key in data if key not in fields)
        if missing or extra:
            _fail(f"router keys must be exactly {fields}; missing {missing}, unexpected {extra}")
        return cls(**{f: data[f] for f in fields})

    @classmethod
    def load(cls, path_or_dict: str | os.PathLike | Mapping[str, Any]) -> Router:
        """Load from a JSON file path or an already-parsed dict."""
        if isinstance(path_or_dict, Mapping):
            return cls.from_dict(path_or_dict)
        path = os.fspath(path_or_dict)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise RouterError(f"router file {path} is not valid JSON: {e}") from None
        try:
            return cls.from_dict(data)
        except RouterError as e:
            raise RouterError(f"router file {path}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prune_layer": self.prune_layer,
            "num_heads": self.num_heads,
            "w_sem": list(self.w_sem),
            "w_aco": list(self.w_aco),
            "mu": dict(self.mu),
            "sigma": self.sigma,
            "prefilter": self.prefilter,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON atomically (temporary file in the same directory, then rename)."""
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".router-", suffix=".json", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, indent=2)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def uniform(cls, model: str, prune_layer: int, num_heads: int, prefilter: float | None = 2.0) -> Router:
        """An uncalibrated router: both profiles uniform (1/H), so every routing gives uniform weights
        and HeadRouter reduces to the no-RoPE probe + pre-filter (= ``no_router``). The centres
        (0, 0.5, 1) and sigma = 1 are placeholders: with identical profiles alpha has no effect."""
        w = (1.0 / num_heads,) * num_heads if isinstance(num_heads, int) and num_heads > 0 else ()
        return cls(model, prune_layer, num_heads, w, w, Centers(0.0, 0.5, 1.0), 1.0, prefilter)

    # ---- what a HeadRouter method reads ----

    @property
    def mu_array(self) -> tuple[float, float, float]:
        """Centres in profile order (semantic, uniform, acoustic), for ``headrouter.route``."""
        return self.mu.as_tuple()

    def prefilter_for(self, name: str) -> float | None:
        """lambda for a HeadRouter method name (None = no pre-filter)."""
        return self.prefilter if _headrouter_method(name).prefilter else None

    def routing_for(self, name: str) -> str:
        """``headrouter.routing_alpha`` mode for a HeadRouter method name."""
        return _headrouter_method(name).routing or ""


def _headrouter_method(name: str):
    if not is_routed(name):
        raise RouterError(f"{name!r} is not HeadRouter or one of its ablations")
    return method(name)


@struct.dataclass
class RouterArrays:
    """A router's numbers as traced arrays, so a new router file does not recompile."""

    w_sem: jax.Array  # [H]
    w_aco: jax.Array  # [H]
    mu: jax.Array  # [3] semantic, uniform, acoustic
    sigma: jax.Array  # []

    @classmethod
    def from_router(cls, r: Router) -> RouterArrays:
        return cls(
            w_sem=jnp.asarray(r.w_sem, jnp.float32),
            w_aco=jnp.asarray(r.w_aco, jnp.float32),
            mu=jnp.asarray(r.mu_array, jnp.float32),
            sigma=jnp.asarray(r.sigma, jnp.float32),
        )
