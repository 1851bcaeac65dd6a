"""Benchmark-style prompts and reply parsing.

Multiple choice (AudioMarathon's classification/QA tasks and MMAU-Pro) follows the usual
LALM benchmark format: an instruction, the question, the options as ``A. ...`` lines, then
"Answer with the option's letter from the given choices directly." ASR asks for the
transcript only. The prompt is the user-turn text; the chat template (system prompt, audio span,
generation prompt) is added by ``hr_jax.make_batch``.

:func:`parse_answer` maps a free-form reply to an option letter, or to None when the reply is
unparsable or ambiguous (two different options named). Unparsable replies are scored as wrong
by :mod:`hr_jax.eval.metrics`.

Training on the synthetic tasks (:mod:`hr_jax.synth`) should build its evaluation-style
instructions with :func:`record_prompt` (or :func:`build_prompt` on
:func:`hr_jax.eval.datasets.parse_record`'s sample), so a trained model sees at evaluation time
exactly the prompt it was trained on. Its reply target (the record's ``target``: the option text,
or the transcript for ``digits``) is accepted by :func:`parse_answer` / :func:`clean_transcript`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from hr_jax.eval.datasets import parse_record
from hr_jax.eval.samples import LETTERS, Sample
from hr_jax.eval.tasks import SYNTH

MC_INSTRUCTION = "Listen to the audio carefully and answer the following question."
MC_SUFFIX = "Answer with the option's letter from the given choices directly."
ASR_PROMPT = "Transcribe the audio. Output only the spoken words, without any other text."


def format_options(choices: Sequence[str]) -> str:
    """``A. first\\nB. second...``."""
    return "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))


def instruction(question: str, choices: Sequence[str]) -> str:
    """The user-turn instruction (the one place it is written): the ASR prompt when there are no
    choices, else the instruction, the question, the lettered options and the answer format."""
    if not choices:
        return ASR_PROMPT
    return f"{MC_INSTRUCTION}\n{question}\n{format_options(choices)}\n{MC_SUFFIX}"


def build_prompt(sample: Sample) -> str:
    """The user-turn instruction for `sample`."""
    return instruction(sample.question, () if sample.is_asr else sample.choices)


def record_prompt(record: Mapping[str, Any], benchmark: str = SYNTH, task: str | None = None) -> str:
    """:func:`build_prompt` of one AudioMarathon-format record, parsed exactly as the loader does.

    For a synthetic record (:func:`hr_jax.synth.generate` / ``make_example``) this is the prompt
    ``hr-jax eval --benchmark synth`` gives that clip: the ASR prompt for ``digits``, the lettered
    multiple-choice prompt otherwise. `task` defaults to the record's ``task`` field.
    """
    return build_prompt(parse_record(dict(record), benchmark, task))


def _strip_markup(reply: str) -> str:
    text = reply
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    text = re.sub(r"[*_`#]+", "", text)
    text = re.sub(r"^\s*assistant\s*[:\n]", "", text, flags=re.IGNORECASE)
    return text.strip().strip("\"'“”‘’").strip()


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


_BARE = re.compile(r"[\W_]*([A-Za-z])[\W_]*")
_LEADING = re.compile(r"[\(\[]?([A-Za-z])(?:[\)\]\.:]|\s+-)\s+(.+)", re.DOTALL)
_PHRASE = re.compile(
    r"\b(?:answer|option|choice)\b(?:\s+(?:is|would\s+be|should\s+be|will\s+be))?\s*[:\-]?\s*"
    r"(?:(?:option|choice)\s+)?[\(\[]?([A-Za-z])(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# Words that follow an option letter used as a letter ("A or B", "A is correct"), not as an article.
_AFTER_LETTER = frozenset(
    "or and nor is was seems because since as would should could might appears looks sounds fits "
    "matches best".split()
)
_LETTER_TOKEN = re.compile(r"(?<![A-Za-z0-9'’])([A-Z])(?![A-Za-z0-9'’])")


def _option_text_letters(text: str, choices: Sequence[str]) -> set[str]:
    """Letters of the options whose text occurs in `text` as whole words.

    An option whose every occurrence lies inside the occurrence of a longer named option
    ("dog" inside "dog barking") does not count.
    """
    norm = _norm(text)
    spans: dict[int, list[tuple[int, int]]] = {}
    for i, c in enumerate(choices):
        opt = _norm(c)
        if not opt:
            continue
        found = [(m.start(), m.end()) for m in re.finditer(rf"(?<!\w){re.escape(opt)}(?!\w)", norm)]
        if found:
            spans[i] = found
    keep = set()
    for i, occ in spans.items():
        inside_longer = all(
            any(
                j != i and s2 <= s and e <= e2 and (e2 - s2) > (e - s)
                for j, o2 in spans.items()
                for s2, e2 in o2
            )
            for s, e in occ
        )
        if not inside_longer:
            keep.add(LETTERS[i])
    return keep


def _letter_tokens(text: str, valid: str) -> set[str]:
    out = set()
    for m in _LETTER_TOKEN.finditer(text):
        letter = m.group(1)
        if letter not in valid:
            continue
        nxt = re.match(r"\s+([a-z]+)", text[m.end() :])
        if letter in ("A", "I") and nxt and nxt.group(1) not in _AFTER_LETTER:
            continue  # the article "A dog", the pronoun "I think"
        out.add(letter)
    return out


def parse_answer(reply: str, choices: Sequence[str]) -> str | None:
    """The option letter a reply names, or None when unparsable or ambiguous.

    Accepted, in order of precedence: a bare letter ("B", "(b)", "B.", "**B**"); a leading
    letter with a separator ("B. Rock", "(B) Rock") unless the text after it is another
    option's text; an answer phrase ("Answer: B", "The answer is (B)", "Option B"); otherwise
    the union of option texts named in the reply (case- and punctuation-insensitive, whole
    words) and stand-alone capital letters, which must name exactly one option.
    """
    if not choices or reply is None:
        return None
    valid = LETTERS[: len(choices)]
    text = _strip_markup(reply)
    if not text:
        return None

    m = _BARE.fullmatch(text)
    if m:
        letter = m.group(1).upper()
        return letter if letter in valid else None

    m = _LEADING.fullmatch(text)
    if m and m.group(1).upper() in valid:
        letter = m.group(1).upper()
        rest = _norm(m.group(2))
        named = {
            LETTERS[i]
            for i, c in enumerate(choices)
            if _norm(c) and (rest == _norm(c) or rest.startswith(_norm(c) + " "))
        }
        if named and letter not in named:
            return None
        if m.group(1).isupper() or letter in named:
            return letter

    phrase = set()
    for pm in _PHRASE.finditer(text):
        letter = pm.group(1)
        if letter.islower() and re.match(r"\s+[a-z]", text[pm.end() :]):
            continue  # "the answer is a dog"
        if letter.upper() in valid:
            phrase.add(letter.upper())
    if len(phrase) == 1:
        return phrase.pop()
    if len(phrase) > 1:
        return None

    found = _option_text_letters(text, choices) | _letter_tokens(text, valid)
    return found.pop() if len(found) == 1 else None


_TRANSCRIPT_PREFIX = re.compile(
    r"^(?:(?:sure|okay|ok)[,.!]?\s*)?(?:(?:here\s+is|here's)\s+)?(?:the\s+)?(?:original\s+)?"
    r"(?:spoken\s+content|spoken\s+words|content|transcription|transcript|text)"
    r"(?:\s+of\s+(?:this|the)\s+audio(?:\s+clip)?)?(?:\s+is)?\s*:\s*",
    re.IGNORECASE,
)


def clean_transcript(reply: str) -> str:
    """Strip a leading "Transcription:"-style preamble and surrounding quotes from an ASR reply."""
    text = _strip_markup(reply or "")
    text = _TRANSCRIPT_PREFIX.sub("", text, count=1)
    return text.strip().strip("\"'“”‘’").strip()
