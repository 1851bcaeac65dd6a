"""The Phi-4-Multimodal converter refuses, by name, what hr_jax does not implement."""

from __future__ import annotations

import json
import shutil

import pytest

from convert.hf_to_jax import main
from hr_jax.checkpoint import ConversionError, UnsupportedConfig, convert

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def native(tiny_phi4):
    return tiny_phi4[0]


@pytest.fixture
def copy(native, tmp_path):
    out = tmp_path / "hf"
    shutil.copytree(native, out)
    return out


def _edit_json(path, **changes):
    d = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    path.write_text(json.dumps(d))


def test_a_rope_type_other_than_longrope_or_default_is_refused(copy, tmp_path):
    cfg = json.loads((copy / "config.json").read_text())
    cfg["rope_parameters"]["rope_type"] = "dynamic"
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedConfig, match="rope_type='dynamic'"):
        convert(copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_lora_target_hr_jax_does_not_merge_is_refused(copy, tmp_path):
    from safetensors.numpy import load_file, save_file

    path = copy / "speech-lora" / "adapter_model.safetensors"
    tensors = load_file(str(path))
    a = next(k for k in tensors if "lora_A" in k)
    tensors[a.replace("model.layers.0", "model.embed_tokens_extend.audio_embed.encoder.encoders.0")] = (
        tensors[a]
    )
    save_file(tensors, str(path))
    with pytest.raises(ConversionError, match="is not merged by hr_jax"):
        convert(copy, tmp_path / "out")


def test_a_sample_rate_other_than_16k_is_refused(copy, tmp_path):
    _edit_json(copy / "preprocessor_config.json", sampling_rate=22050)
    with pytest.raises(ValueError, match="sampling_rate=22050 is not implemented"):
        convert(copy, tmp_path / "out")


def test_a_missing_tensor_is_named(copy, tmp_path):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(copy / "model.safetensors"))
    del tensors["model.embed_tokens_extend.audio_embed.encoder.encoders.1.conv.glu.b2"]
    save_file(tensors, str(copy / "model.safetensors"))
    with pytest.raises(ConversionError, match=r"missing tensor '.*encoders\.1\.conv\.glu\.b2'"):
        convert(copy, tmp_path / "out")


def test_a_checkpoint_without_its_speech_lora_needs_no_lora(copy, tmp_path, capsys):
    shutil.rmtree(copy / "speech-lora")
    assert main(["--hf-dir", str(copy), "--out", str(tmp_path / "out")]) == 1
    assert "--no-lora" in capsys.readouterr().err
    assert (
        main(["--hf-dir", str(copy), "--out", str(tmp_path / "out"), "--no-lora", "--dtype", "float32"]) == 0
    )


def test_a_config_of_another_model_is_refused_by_model_type(copy, tmp_path, capsys):
    _edit_json(copy / "config.json", model_type="llama", audio_config=None)
    assert main(["--hf-dir", str(copy), "--out", str(tmp_path / "out")]) == 1
    assert "model_type='llama'" in capsys.readouterr().err


def test_a_stored_head_equal_to_the_embedding_is_tied_and_a_different_one_kept(copy, tmp_path):
    from safetensors.numpy import load_file, save_file

    from hr_jax.checkpoint import load_params

    tensors = load_file(str(copy / "model.safetensors"))
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].copy()
    save_file(tensors, str(copy / "model.safetensors"))
    cfg, params = load_params(convert(copy, tmp_path / "tied", dtype="float32"))
    assert cfg.text.tie_word_embeddings and params.lm_head is None
    tensors["lm_head.weight"] = tensors["lm_head.weight"] + 1.0
    save_file(tensors, str(copy / "model.safetensors"))
    cfg, params = load_params(convert(copy, tmp_path / "untied", dtype="float32"))
    assert not cfg.text.tie_word_embeddings
    assert params.lm_head.shape == tensors["lm_head.weight"].T.shape
