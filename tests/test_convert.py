import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from convert.hf_to_jax import ConversionError, convert, main
from hr_jax.checkpoint import NotAConvertedCheckpoint, export_hf, iter_leaves, load_params
from hr_jax.testing.checkpoints import build_tiny_checkpoint, load_reference, tiny_config
from models.qwen2_5_omni.hf_config import config_from_hf
from models.qwen2_5_omni.hf_keymap import hf_key_map


def _legacy(name: str) -> str:
    """transformers-5 state_dict name -> checkpoint name (independent of the converter's table)."""
    for new, old in (("model.language_model.", "model."), ("model.audio_tower.", "audio_tower."),
                     ("model.visual.", "visual.")):  # fmt: skip
        if name.startswith(new):
            return old + name[len(new) :]
    return name


def _ref_state(ckpt) -> dict[str, np.ndarray]:
    model = load_reference(ckpt)
    return {_legacy(k): v.detach().numpy() for k, v in model.state_dict().items()}


def _no_leftovers(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    omni = build_tiny_checkpoint(root / "omni", omni_wrapper=True, shards=3)
    thinker = build_tiny_checkpoint(root / "thinker")
    return omni, thinker


@pytest.fixture(scope="module")
def ref(ckpts):
    return _ref_state(ckpts[1])


@pytest.fixture(scope="module")
def converted(ckpts, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "omni_f32"
    convert(ckpts[0], out, dtype="float32")
    return out


def test_tiny_checkpoint_layout(ckpts):
    omni, thinker = ckpts
    index = json.loads((omni / "model.safetensors.index.json").read_text())["weight_map"]
    assert len(set(index.values())) == 3
    assert any(k.startswith("talker.") for k in index) and any(k.startswith("token2wav.") for k in index)
    assert any(k.startswith("thinker.visual.") for k in index)
    assert all(k.startswith(("thinker.", "talker.", "token2wav.")) for k in index)
    cfg = json.loads((omni / "config.json").read_text())
    assert cfg["model_type"] == "qwen2_5_omni" and "thinker_config" in cfg
    assert (thinker / "model.safetensors").is_file() and not (
        thinker / "model.safetensors.index.json"
    ).exists()
    c = config_from_hf(json.loads((thinker / "config.json").read_text()))
    assert config_from_hf(cfg) == c
    assert (c.audio.d_model, c.audio.n_window, c.audio.output_dim, c.text.hidden_size) == (32, 10, 64, 64)
    assert (c.text.num_attention_heads, c.text.num_key_value_heads, c.text.head_dim) == (4, 2, 16)
    assert c.text.rope_theta == 10000.0 and c.text.vocab_size == 512


def test_convert_omni_sharded_matches_torch(converted, ref, ckpts):
    cfg, params = load_params(converted)
    assert cfg == config_from_hf(json.loads((ckpts[1] / "config.json").read_text()))
    thinker_keys = {k for k in ref if not k.startswith("visual.")}
    entries = hf_key_map(cfg)
    assert {e.hf_key for e in entries} == thinker_keys  # every thinker tensor used, every leaf filled
    leaves = dict(iter_leaves(params))
    for e in entries:
        x = np.asarray(leaves[e.leaf] if e.layer is None else leaves[e.leaf][e.layer])
        t = ref[e.hf_key]
        t = t.T if e.layout == "linear" else t.transpose(2, 1, 0) if e.layout == "conv" else t
        np.testing.assert_array_equal(x, t, err_msg=e.hf_key)
    # independent spot checks of the layouts
    np.testing.assert_array_equal(params.audio.conv1_w, ref["audio_tower.conv1.weight"].transpose(2, 1, 0))
    np.testing.assert_array_equal(params.layers.k_w[2], ref["model.layers.2.self_attn.k_proj.weight"].T)
    np.testing.assert_array_equal(params.audio.layers.fc2_w[1], ref["audio_tower.layers.1.fc2.weight"].T)
    np.testing.assert_array_equal(params.lm_head, ref["lm_head.weight"].T)
    np.testing.assert_array_equal(
        params.audio.bos_eos_embedding, ref["audio_tower.audio_bos_eos_token.weight"]
    )
    assert params.embed.dtype == jnp.float32
    meta = json.loads((converted / "hr_jax_config.json").read_text())
    assert meta["dtype"] == "float32" and meta["source"] == str(ckpts[0].absolute())
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.json", "preprocessor_config.json",
              "generation_config.json", "hf_config.json"):  # fmt: skip
        assert (converted / f).is_file(), f
    assert not [p for p in converted.parent.iterdir() if p.name.startswith(".")]


def test_convert_thinker_single_file(ckpts, converted, tmp_path):
    out = convert(ckpts[1], tmp_path / "thinker", dtype="float32")
    _, a = load_params(out)
    _, b = load_params(converted)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def test_bfloat16(ckpts, converted, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    out = convert(ckpts[0], tmp_path / "bf16", dtype="bfloat16")
    assert json.loads((out / "hr_jax_config.json").read_text())["dtype"] == "bfloat16"
    _, p16 = load_params(out)
    _, p32 = load_params(converted)
    assert p16.layers.q_w.dtype == jnp.bfloat16
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_array_equal(x, y.astype(jnp.bfloat16)), p16, p32)
    _, up = load_params(out, dtype=jnp.float32)  # cast on restore
    assert up.embed.dtype == jnp.float32
    np.testing.assert_array_equal(up.embed, p16.embed.astype(jnp.float32))
    # a bfloat16 *source* checkpoint (as released) is read through ml_dtypes
    src = tmp_path / "src_bf16"
    shutil.copytree(ckpts[1], src)
    sd = load_file(str(src / "model.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in sd.items()}, str(src / "model.safetensors"))
    _, q = load_params(convert(src, tmp_path / "from_bf16", dtype="float32"))

    def same_as_rounded(x, y):
        np.testing.assert_array_equal(x, y.astype(jnp.bfloat16).astype(x.dtype))

    jax.tree_util.tree_map(same_as_rounded, q, p32)
    assert q.embed.dtype == jnp.float32


def _edited_copy(src: Path, dst: Path, edit) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    sd = load_file(str(dst / "model.safetensors"))
    edit(sd)
    save_file(sd, str(dst / "model.safetensors"))
    return dst


@pytest.mark.parametrize(
    "kind,key,match",
    [
        ("missing", "model.layers.1.mlp.up_proj.weight", r"missing tensor 'model\.layers\.1\.mlp\.up_proj"),
        ("extra", "model.layers.0.mlp.extra_proj.weight", r"unknown tensor 'model\.layers\.0\.mlp\.extra_"),
        (
            "shape",
            "audio_tower.layers.1.fc1.weight",
            r"'audio_tower\.layers\.1\.fc1\.weight' has shape \[64, 31\], expected \[64, 32\]",
        ),
    ],
)
def test_refusals(ckpts, tmp_path, kind, key, match):
    import torch

    def edit(sd):
        if kind == "missing":
            del sd[key]
        elif kind == "extra":
            sd[key] = torch.zeros(3)
        else:
            sd[key] = sd[key][:, :31].clone()

    src = _edited_copy(ckpts[1], tmp_path / "src", edit)
    out = tmp_path / "out" / "ckpt"
    with pytest.raises(ConversionError, match=match):
        convert(src, out, dtype="float32")
    _no_leftovers(out)


def test_unknown_top_level_key_in_omni(ckpts, tmp_path):
    from safetensors.torch import load_file, save_file

    src = shutil.copytree(ckpts[0], tmp_path / "omni")
    first = src / "model-00001-of-00003.safetensors"
    sd = load_file(str(first))
    sd["speaker_encoder.weight"] = sd[next(iter(sd))].clone()
    save_file(sd, str(first))
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="speaker_encoder.weight"):
        convert(src, out, dtype="float32")
    _no_leftovers(out)


def test_out_dir_handling(ckpts, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert(ckpts[1], out, dtype="float32")
    assert (out / "keep.txt").read_text() == "x"
    assert main(["--hf-dir", str(ckpts[1]), "--out", str(out), "--dtype", "float32"]) == 1
    convert(ckpts[1], out, dtype="float32", overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "hr_jax_config.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    empty = tmp_path / "empty"
    empty.mkdir()
    convert(ckpts[1], empty, dtype="float32")  # an existing empty directory is fine
    with pytest.raises(NotAConvertedCheckpoint, match="convert it first"):
        load_params(ckpts[1])


def test_load_params_sharding(converted):
    sh = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    _, p = load_params(converted, sharding=sh)
    assert all(x.sharding == sh for x in jax.tree_util.tree_leaves(p))


def test_export_hf_roundtrip(converted, ref, tmp_path):
    cfg, params = load_params(converted)
    for name, base in (("with_base", converted / "hf_config.json"), ("no_base", None)):
        out = export_hf(params, cfg, tmp_path / name, base_config=base)
        got = _ref_state(out)
        assert config_from_hf(json.loads((out / "config.json").read_text())) == cfg
        for k, v in ref.items():
            if not k.startswith("visual."):
                np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_tied_embeddings_and_gqa(tmp_path):
    over = {"tie_word_embeddings": True, "num_attention_heads": 8, "num_key_value_heads": 1}
    assert tiny_config(**over)["text_config"]["num_attention_heads"] == 8
    src = build_tiny_checkpoint(tmp_path / "hf", config_overrides=over, seed=1, extra_tensors=False)
    cfg, params = load_params(convert(src, tmp_path / "conv", dtype="float32"))
    assert cfg.text.tie_word_embeddings and params.lm_head is None
    assert params.layers.q_w.shape == (3, 64, 128) and params.layers.k_w.shape == (3, 64, 16)
    ref = _ref_state(src)
    got = _ref_state(export_hf(params, cfg, tmp_path / "exp"))
    for k, v in ref.items():
        if not k.startswith("visual."):
            np.testing.assert_array_equal(got[k], v, err_msg=k)
    np.testing.assert_array_equal(got["lm_head.weight"], ref["model.embed_tokens.weight"])


def test_cli(ckpts, tmp_path):
    out = tmp_path / "cli"
    assert main(["--hf-dir", str(ckpts[0]), "--out", str(out), "--dtype", "bfloat16"]) == 0
    cfg, p = load_params(out)
    assert p.embed.dtype == jnp.bfloat16 and p.embed.dtype == ml_dtypes.bfloat16
    assert cfg.audio_token_id == tiny_config()["audio_token_index"]
