import json

import pytest

from hr_jax.testing.checkpoints import TINY_CORPUS, TINY_VOCAB_SIZE, tiny_config
from hr_jax.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, build_tokenizer, special_token_ids


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    ids = build_tokenizer(TINY_CORPUS.splitlines(), TINY_VOCAB_SIZE, d)
    return d, ids


@pytest.fixture(scope="module")
def hf_tok(tok_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_dir[0])


def test_special_tokens_at_end(tok_dir, hf_tok):
    d, ids = tok_dir
    base = TINY_VOCAB_SIZE - len(SPECIAL_TOKENS)
    assert ids == {t: base + i for i, t in enumerate(SPECIAL_TOKENS)} == special_token_ids(TINY_VOCAB_SIZE)
    assert list(ids)[:6] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>",
                             "<|audio_eos|>"]  # fmt: skip
    assert len(hf_tok) == TINY_VOCAB_SIZE
    assert hf_tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(base, TINY_VOCAB_SIZE))
    # ids recorded in tokenizer_config.json, every one special
    decoder = json.loads((d / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    assert {v["content"]: int(k) for k, v in decoder.items()} == ids
    assert all(v["special"] for v in decoder.values())
    # the tiny model config points at the same ids
    cfg = tiny_config()
    assert cfg["audio_token_index"] == ids["<|AUDIO|>"]
    assert cfg["audio_start_token_id"] == ids["<|audio_bos|>"]
    assert cfg["audio_end_token_id"] == ids["<|audio_eos|>"]


def test_autotokenizer_loads(tok_dir, hf_tok):
    from tokenizers import Tokenizer

    d, ids = tok_dir
    assert "Qwen2Tokenizer" in type(hf_tok).__name__
    assert hf_tok.eos_token == "<|im_end|>" and hf_tok.eos_token_id == ids["<|im_end|>"]
    assert hf_tok.pad_token == "<|endoftext|>" and hf_tok.pad_token_id == ids["<|endoftext|>"]
    assert hf_tok.bos_token is None
    text = "Hello world! Transcribe the audio, please: 42 dogs.\nNew line  with  spaces."
    enc = hf_tok(text).input_ids
    assert enc == Tokenizer.from_file(str(d / "tokenizer.json")).encode(text).ids
    assert hf_tok.decode(enc) == text
    assert max(enc) < TINY_VOCAB_SIZE - len(SPECIAL_TOKENS)  # ordinary text never hits special ids
    span = hf_tok("<|audio_bos|><|AUDIO|><|audio_eos|>").input_ids
    assert span == [ids["<|audio_bos|>"], ids["<|AUDIO|>"], ids["<|audio_eos|>"]]
    # preprocessor config of a real checkpoint: Whisper front end with 128 mel bins
    from transformers import AutoFeatureExtractor

    fe = AutoFeatureExtractor.from_pretrained(d)
    assert type(fe).__name__ == "WhisperFeatureExtractor"
    assert (fe.feature_size, fe.sampling_rate, fe.hop_length, fe.n_fft) == (128, 16000, 160, 400)


def test_chat_template(tok_dir, hf_tok):
    d, ids = tok_dir
    assert json.loads((d / "chat_template.json").read_text())["chat_template"] == CHAT_TEMPLATE
    assert json.loads((d / "tokenizer_config.json").read_text())["chat_template"] == CHAT_TEMPLATE
    conv = [
        {"role": "system", "content": "You are a helpful assistant."},
        {
            "role": "user",
            "content": [{"type": "audio", "audio": "a.wav"}, {"type": "text", "text": "What is said?"}],
        },
    ]
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|>What is said?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert hf_tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=False) == expected
    # default system turn when none is given; string content; no generation prompt
    conv2 = [{"role": "user", "content": "Hi"}]
    assert hf_tok.apply_chat_template(conv2, tokenize=False) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    )
    ids_prompt = hf_tok(expected).input_ids
    assert ids_prompt[0] == ids["<|im_start|>"] and ids_prompt.count(ids["<|AUDIO|>"]) == 1


def test_corpus_too_small(tmp_path):
    with pytest.raises(ValueError, match="corpus"):
        build_tokenizer(["tiny corpus"], 1000, tmp_path)
    with pytest.raises(ValueError, match="too small"):
        build_tokenizer(TINY_CORPUS.splitlines(), 200, tmp_path)
