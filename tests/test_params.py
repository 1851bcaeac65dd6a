"""models.params: every weight declared once; initialisation, restore targets and sharding read it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from hr_jax.testing.checkpoints import tiny_config
from models.params import ArrayInfo, abstract_params, init_params, leaf_shapes, partition_specs
from models.qwen2_5_omni.hf_config import config_from_hf
from models.qwen2_5_omni.hf_keymap import hf_key_map
from models.qwen2_5_omni.params import param_info


@pytest.fixture(scope="module")
def cfg():
    return config_from_hf(tiny_config())


def test_every_leaf_has_a_logical_name_per_axis(cfg):
    for info in jax.tree.leaves(param_info(cfg)):
        assert isinstance(info, ArrayInfo)
        assert len(info.logical_axes) == len(info.shape)


def test_array_info_refuses_axes_of_another_rank():
    with pytest.raises(ValueError, match="rank"):
        ArrayInfo((2, 3), ("embed",))


def test_init_follows_the_declaration(cfg):
    params = init_params(cfg, jax.random.key(0), jnp.bfloat16)
    for p, info in zip(jax.tree.leaves(params), jax.tree.leaves(param_info(cfg)), strict=True):
        assert p.shape == info.shape and p.dtype == jnp.bfloat16
    np.testing.assert_array_equal(params.layers.attn_norm, 1.0)  # norms start at 1
    np.testing.assert_array_equal(params.layers.q_b, 0.0)  # biases at 0
    std = float(jnp.std(params.layers.gate_w.astype(jnp.float32)))
    assert 0.015 < std < 0.025  # matrices: normal, std 0.02


def test_abstract_params_are_the_restore_targets(cfg):
    target = abstract_params(cfg, jnp.float32)
    params = init_params(cfg, jax.random.key(1))
    for t, p in zip(jax.tree.leaves(target), jax.tree.leaves(params), strict=True):
        assert isinstance(t, jax.ShapeDtypeStruct) and t.shape == p.shape and t.dtype == p.dtype


def test_tied_embeddings_declare_no_head(cfg):
    tied = config_from_hf(tiny_config(tie_word_embeddings=True))
    assert param_info(tied).lm_head is None and param_info(cfg).lm_head is not None


def test_partition_specs_map_logical_axes_by_rule(cfg):
    specs = partition_specs(cfg, {"mlp": "model", "vocab": "model"})
    assert specs.layers.gate_w == PartitionSpec(None, None, "model")
    assert specs.layers.down_w == PartitionSpec(None, "model", None)
    assert specs.embed == PartitionSpec("model", None)
    assert specs.norm == PartitionSpec(None)


def test_the_checkpoint_key_map_reads_the_same_shapes(cfg):
    shapes = leaf_shapes(cfg)
    assert set(shapes) == {e.leaf for e in hf_key_map(cfg)}
    assert shapes["layers.q_w"] == param_info(cfg).layers.q_w.shape
