"""A router file saved in a checkpoint directory is that checkpoint's default; `demo` names the
shipped model, which carries its calibrated router."""

from __future__ import annotations

import shutil

import numpy as np
from conftest import waveform

import hr_jax
from hr_jax.model import DEMO, DEMO_DIR, ROUTER_FILE
from hr_jax.pruning.router import Router


def _router(num_heads: int) -> Router:
    """A router whose centres put any spread near the acoustic one (so routing is not uniform)."""
    w = np.linspace(1.0, 0.0, num_heads)
    return Router(model="tiny", prune_layer=2, num_heads=num_heads, w_sem=tuple(w / w.sum()),
                  w_aco=tuple(w[::-1] / w.sum()), mu={"semantic": 5.0, "uniform": 3.0, "acoustic": 0.0},
                  sigma=2.0)  # fmt: skip


def _alpha(model, router=None) -> np.ndarray:
    batch = hr_jax.make_batch(model, [waveform(2.0)], ["What is it?"])
    return hr_jax.generate_batch(model, batch, 0.5, router=router, max_new_tokens=1).alpha[0]


def test_a_router_saved_in_the_checkpoint_directory_is_used_by_default(tiny_ckpt, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_ckpt[1], ckpt)
    plain = hr_jax.load(ckpt)
    assert plain.router_path is None
    router = _router(plain.config.text.num_attention_heads)
    router.save(ckpt / ROUTER_FILE)
    model = hr_jax.load(ckpt)
    assert model.router_path == str(ckpt / ROUTER_FILE)
    np.testing.assert_allclose(_alpha(model), _alpha(plain, router), rtol=1e-6)
    assert not np.allclose(_alpha(model), _alpha(plain))  # without it: uniform profiles


def test_an_explicit_router_overrides_the_checkpoint_one(tiny_ckpt, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_ckpt[1], ckpt)
    heads = hr_jax.load(ckpt).config.text.num_attention_heads
    _router(heads).save(ckpt / ROUTER_FILE)
    other = Router.load(dict(_router(heads).to_dict(), mu={"semantic": 0.0, "uniform": 3.0, "acoustic": 5.0}))
    model = hr_jax.load(ckpt)
    assert not np.allclose(_alpha(model), _alpha(model, other))


def test_demo_names_the_shipped_model_and_its_calibrated_router():
    model = hr_jax.load(DEMO)
    assert model.router_path == str(DEMO_DIR / ROUTER_FILE)
    router = Router.load(model.router_path)
    assert router.num_heads == model.config.text.num_attention_heads
    assert router.mu["semantic"] != router.mu["acoustic"]  # calibrated, not the uniform fallback
