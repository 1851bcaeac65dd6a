"""Prompts, answer parsing on realistic replies, and metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from hr_jax.eval import metrics
from hr_jax.eval.prompts import build_prompt, clean_transcript, parse_answer
from hr_jax.eval.samples import Sample, answer_letter

GENRES = ["Rock", "Pop", "Jazz", "Blues"]


def test_prompt_format():
    s = Sample("x", "/a.wav", "What is the genre?", ("Rock", "Pop"), "A", "gtzan", "acoustic")
    assert build_prompt(s) == (
        "Listen to the audio carefully and answer the following question.\n"
        "What is the genre?\nA. Rock\nB. Pop\n"
        "Answer with the option's letter from the given choices directly."
    )
    asr = Sample("y", "/b.wav", "", (), "HELLO", "librispeech", "semantic", reference="HELLO")
    assert build_prompt(asr).startswith("Transcribe the audio.")


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("B", "B"),
        ("b", "B"),
        ("(C)", "C"),
        ("D.", "D"),
        ("**A**", "A"),
        ("B. Pop", "B"),
        ("(C) Jazz", "C"),
        ("B) Pop", "B"),
        ("Answer: D", "D"),
        ("The answer is B.", "B"),
        ("The correct answer is (C).", "C"),
        ("Option A", "A"),
        ("The answer is option D, because of the guitar.", "D"),
        ("Jazz", "C"),
        ("jazz.", "C"),
        ("It sounds like blues music to me.", "D"),
        ("A rock song with a strong beat.", "A"),  # "A" is an article here
        ("The genre is Pop (B).", "B"),
        ("I think it is C because of the saxophone.", "C"),
        ("The answer is: Rock", "A"),
        ("  'B'  ", "B"),
    ],
)
def test_parse_answer_accepts(reply, expected):
    assert parse_answer(reply, GENRES) == expected


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "I am not sure.",
        "A or B",
        "The answer is A or option B.",
        "It could be rock or jazz.",
        "B. Rock",  # letter and option text disagree
        "The genre is Pop (C).",
        "E",
        "Answer: E",
        "The answer is a dog.",
    ],
)
def test_parse_answer_rejects(reply):
    assert parse_answer(reply, GENRES) is None


def test_parse_answer_option_texts():
    assert parse_answer("The speaker is female.", ["male", "female"]) == "B"
    assert parse_answer("male", ["male", "female"]) == "A"
    assert parse_answer("dog barking", ["dog", "dog barking"]) == "B"  # longest match wins
    assert parse_answer("There are 2 speakers.", ["1", "2", "3"]) == "B"
    assert parse_answer("real", ["real", "fake"]) == "A"
    assert parse_answer("C", ["real", "fake"]) is None


def test_answer_letter_prefers_the_choice_whose_text_is_the_answer_over_the_letter():
    assert answer_letter("A", ["G", "D", "A", "E"]) == "C"
    assert answer_letter("B", ["Blues - blues", "Rock - rock"]) == "B"


def test_answer_letter_normalisation():
    assert answer_letter("(b)", GENRES) == "B"
    assert answer_letter("blues", GENRES) == "D"
    assert answer_letter("E", GENRES) is None
    assert answer_letter("Metal", GENRES) is None


def test_clean_transcript():
    assert clean_transcript("The original content of this audio is: 'Hello world.'") == "Hello world."
    assert clean_transcript("Transcription: HELLO there") == "HELLO there"
    assert clean_transcript("hello world") == "hello world"


def test_f1_macro_hand_computed():
    refs = ["A", "A", "B", "B", "C"]
    preds = ["A", "B", "B", None, "C"]
    # A: P=1, R=1/2 -> 2/3; B: P=1/2, R=1/2 -> 1/2; C: 1.  Unparsed counts as a wrong label.
    assert metrics.f1(refs, preds) == pytest.approx(100 * (2 / 3 + 1 / 2 + 1) / 3)
    # weighted by support 2, 2, 1
    assert metrics.f1(refs, preds, average="weighted") == pytest.approx(100 * (2 * 2 / 3 + 2 * 0.5 + 1) / 5)
    # a predicted letter that is never correct adds no class of its own to the average
    assert metrics.f1(["A", "B"], ["D", "B"]) == pytest.approx(50.0)
    assert np.isnan(metrics.f1([], []))


def test_word_accuracy_hand_computed():
    refs = ["hello world", "the cat sat"]
    hyps = ["Hello, world!", "the bat sat down"]  # 1 substitution + 1 insertion over 5 words
    assert metrics.word_error_rate(refs, hyps) == pytest.approx(0.4)
    assert metrics.word_accuracy(refs, hyps) == pytest.approx(60.0)
    assert metrics.word_accuracy(["dog house"], ["Dog-house."]) == pytest.approx(100.0)
    assert metrics.word_accuracy(["a"], ["b c d"]) == 0.0  # WER 300% clipped
    assert metrics.word_accuracy(["hello there"], [""]) == 0.0
    assert metrics.normalize_transcript("It's a Dog-House!") == "its a dog house"


def test_accuracy_and_sample_weighting():
    assert metrics.accuracy([True, False, True, True]) == pytest.approx(75.0)
    # 3/4 and 1/6: sample-weighted 4/10, not the mean of 75% and 16.7%
    assert metrics.sample_weighted_accuracy({"speech": (3, 4), "sound": (1, 6)}) == pytest.approx(40.0)


def test_relative_to_vanilla_reproduces_paper():
    vanilla = [25.2, 82.3, 94.7, 70.2, 97.4, 69.3, 39.6, 29.1, 97.2]  # Table 1, Qwen2.5-Omni-3B
    random70 = [26.5, 80.3, 88.4, 71.1, 97.5, 69.7, 38.4, 28.6, 95.7]
    headrouter70 = [28.8, 82.9, 96.8, 73.6, 100.0, 69.4, 34.3, 30.6, 99.4]
    assert round(metrics.relative_to_vanilla(np.mean(random70), np.mean(vanilla)), 1) == 98.5
    assert round(metrics.relative_to_vanilla(np.mean(headrouter70), np.mean(vanilla)), 1) == 101.8
    assert metrics.relative_to_vanilla(1.0, 0.0) is None
    assert metrics.relative_to_vanilla(None, 50.0) is None
