"""Byte-level BPE tokenizer in the Qwen2 / Qwen2.5-Omni format, for tiny test checkpoints.

`build_tokenizer` trains a BPE on a corpus with the Qwen2 pre-tokenizer (NFC, the Qwen2 split regex,
ByteLevel without prefix space) and writes a Hugging Face tokenizer directory that
`transformers.AutoTokenizer.from_pretrained` loads as `Qwen2Tokenizer(Fast)`:
`tokenizer.json`, `vocab.json`, `merges.txt`, `tokenizer_config.json` (with the chat template),
`chat_template.json` and `preprocessor_config.json` (WhisperFeatureExtractor, 128 mel bins), i.e.
the files a real Qwen2.5-Omni checkpoint directory carries next to its weights.

The special tokens of Qwen2.5-Omni are appended as added special tokens at the end of the
vocabulary, in the official order (`SPECIAL_TOKENS`), so their ids are
`vocab_size - len(SPECIAL_TOKENS) + i` (see `special_token_ids`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from models.qwen2_5_omni.prompt import SPECIAL_TOKENS, special_token_ids

EOS_TOKEN = "<|im_end|>"  # tokenizer_config eos of the released (chat) checkpoints
PAD_TOKEN = "<|endoftext|>"

# The chat template of Qwen/Qwen2.5-Omni-7B (`chat_template.json`), identical to the one
# `transformers` uses in tests/models/qwen2_5_omni/test_processor_qwen2_5_omni.py. Default system turn
# "You are a helpful assistant."; audio parts render `<|audio_bos|><|AUDIO|><|audio_eos|>` (the
# processor later expands `<|AUDIO|>` to one token per audio frame).
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant."
    "<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}{% if add_audio_id %}Audio "
    "{{ audio_count.value }}: {% endif %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The Qwen2 pre-tokenization regex (transformers' Qwen2Tokenizer.PRETOKENIZE_REGEX).
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

MODEL_MAX_LENGTH = 32768


def _make_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    tok = Tokenizer(BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def tokenizer_config(ids: dict[str, int]) -> dict:
    """`tokenizer_config.json` contents in the layout of the released Qwen2.5-Omni checkpoints."""
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(i): {
                "content": tok,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for tok, i in ids.items()
        },
        "additional_special_tokens": [t for t in SPECIAL_TOKENS if t != PAD_TOKEN],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS_TOKEN,
        "errors": "replace",
        "model_max_length": MODEL_MAX_LENGTH,
        "pad_token": PAD_TOKEN,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def write_preprocessor_config(out_dir: str | Path, num_mel_bins: int = 128) -> None:
    """Writes the WhisperFeatureExtractor `preprocessor_config.json` of Qwen2.5-Omni (16 kHz, hop 160)."""
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(
        feature_size=num_mel_bins,
        sampling_rate=16000,
        hop_length=160,
        n_fft=400,
        chunk_length=300,  # Qwen2.5-Omni's value (n_samples 4,800,000; nb_max_frames 30,000)
        padding_value=0.0,
        return_attention_mask=True,
    )
    fe.to_json_file(str(Path(out_dir) / "preprocessor_config.json"))


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _padded(tok, size: int):
    """`tok` with its BPE vocabulary padded to `size` ids by tokens that no merge produces."""
    from tokenizers.models import BPE

    model = json.loads(tok.to_str())["model"]
    vocab = dict(model["vocab"])
    if size < len(vocab):
        raise ValueError(f"first_special_id={size} is below the learned vocabulary's {len(vocab)} tokens")
    vocab.update({f"<|unused_{i}|>": i for i in range(len(vocab), size)})
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    padded = _make_tokenizer()
    padded.model = BPE(vocab=vocab, merges=merges, unk_token=None, continuing_subword_prefix="",
                       end_of_word_suffix="", fuse_unk=False)  # fmt: skip
    return padded


def build_tokenizer(
    corpus: Iterable[str], vocab_size: int, out_dir: str | Path, first_special_id: int | None = None
) -> dict[str, int]:
    """Trains a Qwen2-style byte-level BPE of exactly `vocab_size` tokens and saves it to `out_dir`.

    The last `len(SPECIAL_TOKENS)` ids are the Qwen2.5-Omni special tokens (in order). Returns
    `{token: id}` for them (also recorded in `tokenizer_config.json`'s `added_tokens_decoder`).
    Raises ValueError when the corpus is too small to learn `vocab_size - 14 - 256` merges.

    `first_special_id` (e.g. 151643, the released tokenizer's): the BPE vocabulary is padded with
    tokens no merge produces up to that id, so the special tokens get the released ids
    (`<|AUDIO|>` 151646, ...) while the learned BPE stays small.
    """
    from tokenizers import AddedToken, pre_tokenizers, trainers

    n_bpe = vocab_size - len(SPECIAL_TOKENS)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if n_bpe < len(alphabet):
        raise ValueError(
            f"vocab_size={vocab_size} is too small: need at least {len(alphabet) + len(SPECIAL_TOKENS)} "
            f"(256 byte tokens + {len(SPECIAL_TOKENS)} special tokens)"
        )
    tok = _make_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=n_bpe,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=alphabet,
        special_tokens=[],
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    if tok.get_vocab_size() != n_bpe:
        raise ValueError(
            f"the corpus only supports a BPE vocabulary of {tok.get_vocab_size()} tokens, "
            f"{n_bpe} are needed for vocab_size={vocab_size}; give a larger corpus or a smaller vocab_size"
        )
    if first_special_id is not None:
        tok = _padded(tok, first_special_id)
        vocab_size = first_special_id + len(SPECIAL_TOKENS)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    expected = special_token_ids(vocab_size)
    if ids != expected or tok.get_vocab_size() != vocab_size:  # pragma: no cover - tokenizers invariant
        raise RuntimeError(f"special tokens landed at {ids}, expected {expected}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    tok.model.save(str(out), None)  # vocab.json + merges.txt (for slow-tokenizer loaders)
    _write_json(out / "tokenizer_config.json", tokenizer_config(ids))
    _write_json(out / "chat_template.json", {"chat_template": CHAT_TEMPLATE})
    write_preprocessor_config(out)
    return ids
