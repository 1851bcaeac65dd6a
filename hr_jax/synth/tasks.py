"""Synthetic long-audio tasks mirroring AudioMarathon's families, and the clip builder.

Each example is drawn in two stages from one seed:

1. a *plan* (pure text and labels: question, choices, answer, what to say, which sound, clip length,
   voice), from its own random stream, so :func:`plan_example` and :func:`hr_jax.synth.corpus` need no
   audio;
2. the *audio*: the informative segment(s) (a few seconds in total) placed at random positions in a
   15-90 s clip whose remaining time is filler: a quiet noise floor plus distractor sounds that cannot
   change the answer (non-speech sounds for speech tasks, speech and neutral sounds for sound tasks).

Randomness comes from ``numpy.random.SeedSequence([seed, split, task, index])``, so example ``i`` of a
split is the same whatever ``n`` is and whatever other tasks are generated; class labels are balanced by
cycling through a seeded permutation of the classes every ``K`` examples.

Tasks (category, answer vocabulary):

- ``digits`` (semantic, ASR-like): 3-4 spoken digits ``zero``..``nine``; the answer is the transcript.
- ``spoken_qa`` (semantic): one spoken sentence "the <colour> <animal> is in the <place>"; a question
  about one slot, 4 choices from that slot's 6 words.
- ``sound_event`` (acoustic): which of 6 events occurred, 4 choices.
- ``scene`` (acoustic): which of 5 background noises (noise colours, rain, hum), 4 choices.
- ``melody`` (acoustic): which of 4 music styles, 4 choices.
- ``gender`` (acoustic): speaker gender, 2 choices (``male``/``female``; ``choice_c``/``choice_d`` empty).
- ``sound_after_word`` (mixed): two spoken cue words, each followed by a different sound event; which
  sound came right after the asked word, 4 choices (both sounds present are among them).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import sounds
from .speech import random_voice

SPLITS: tuple[str, ...] = ("train", "dev", "test")
SPLIT_SEEDS: dict[str, int] = {"train": 1234, "dev": 5678, "test": 9012}
"""Default seed of each split (``seed=None``)."""

DIGITS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COLOURS: tuple[str, ...] = ("red", "blue", "green", "yellow", "black", "white")
ANIMALS: tuple[str, ...] = ("cat", "dog", "horse", "bird", "fish", "cow")
PLACES: tuple[str, ...] = ("kitchen", "garden", "garage", "office", "bedroom", "station")
QA_TEMPLATES: tuple[str, ...] = (
    "the {colour} {animal} is in the {place}",
    "there is a {colour} {animal} in the {place}",
    "I saw a {colour} {animal} in the {place}",
)
CUE_WORDS: tuple[str, ...] = ("apple", "river", "pencil", "rocket", "mountain", "candle")
GENDERS: tuple[str, ...] = ("male", "female")

NEUTRAL_SENTENCES: tuple[str, ...] = (
    "please close the window",
    "the weather is nice today",
    "we will meet after lunch",
    "turn left at the corner",
    "the train was late again",
    "she likes to read books",
    "bring an umbrella tomorrow",
    "the coffee is too hot",
    "he forgot his keys at home",
    "let us start the meeting",
    "the shop opens early",
    "my brother plays the guitar",
    "the movie was very long",
    "water the plants on friday",
    "the lights are still on",
    "we need more paper",
)
"""Speech that carries no answer: distractor speech in sound tasks, and the content of ``gender``."""

QUESTIONS: dict[str, str] = {
    "digits": "Transcribe the spoken digits.",
    "sound_event": "Which sound event can be heard in the recording?",
    "scene": "What kind of background noise is in the recording?",
    "melody": "What is the style of the music in the recording?",
    "gender": "What is the gender of the speaker?",
    "qa_colour": "What colour is the {animal}?",
    "qa_animal": "Which animal is in the {place}?",
    "qa_place": "Where is the {colour} {animal}?",
    "sound_after_word": 'Which sound comes right after the spoken word "{word}"?',
}

EDGE_SECONDS = 0.3  # informative audio never touches the clip boundary
MARGIN_SECONDS = 0.4  # distractors keep this distance from informative audio
MEAN_DISTRACTOR_GAP = 2.5  # seconds of floor between distractors, on average
FLOOR_RMS = (0.0005, 0.0015)  # white noise floor under the whole clip


@dataclass(frozen=True)
class TaskSpec:
    """Static description of one task."""

    name: str
    category: str  # "semantic" | "acoustic" | "mixed"
    labels: tuple[str, ...]  # answer vocabulary (for digits: the word vocabulary)
    n_choices: int  # 0 for the open-ended (ASR-like) task
    distractors: tuple[str, ...]  # kinds allowed in the filler: "speech" or sounds.DISTRACTOR_KINDS


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec("digits", "semantic", DIGITS, 0, sounds.DISTRACTOR_KINDS),
        TaskSpec("spoken_qa", "semantic", COLOURS + ANIMALS + PLACES, 4, sounds.DISTRACTOR_KINDS),
        TaskSpec("sound_event", "acoustic", sounds.SOUND_EVENTS, 4, ("speech", "noise")),
        TaskSpec("scene", "acoustic", sounds.SCENES, 4, ("speech", "event")),
        TaskSpec("melody", "acoustic", sounds.MELODY_STYLES, 4, ("speech", "noise")),
        TaskSpec("gender", "acoustic", GENDERS, 2, sounds.DISTRACTOR_KINDS),
        TaskSpec("sound_after_word", "mixed", sounds.SOUND_EVENTS, 4, ("speech",)),
    )
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


@dataclass
class Plan:
    """Text-level content of one example (everything but the audio samples)."""

    task: str
    split: str
    seed: int
    index: int
    seconds: float  # target clip length
    question: str
    choices: list[str]  # [] for open-ended tasks
    answer: str
    items: list[dict[str, Any]]  # informative segments to render, see ``_render_item``
    meta: dict[str, Any] = field(default_factory=dict)
    max_seconds: float | None = None  # longest the clip may be stretched to fit the informative audio

    @property
    def category(self) -> str:
        return TASKS[self.task].category


def _stable_id(name: str) -> int:
    return zlib.crc32(name.encode())


def streams(seed: int, split: str, task: str, index: int) -> list[np.random.Generator]:
    """Independent generators for plan, audio and layout of one example."""
    ss = np.random.SeedSequence([seed, _stable_id(split), _stable_id(task), index])
    return [np.random.default_rng(s) for s in ss.spawn(3)]


def _balanced_label(labels: Sequence[str], seed: int, split: str, task: str, index: int) -> str:
    """Label for example ``index``: every block of ``len(labels)`` examples holds each label once."""
    k = len(labels)
    cycle, pos = divmod(index, k)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _stable_id(split), _stable_id(task), cycle, 7]))
    return labels[int(rng.permutation(k)[pos])]


def _choices(
    rng: np.random.Generator, answer: str, pool: Sequence[str], n: int, must_include: Sequence[str] = ()
) -> list[str]:
    """``n`` distinct options: the answer, ``must_include``, and random others from ``pool``, shuffled."""
    chosen = [answer] + [m for m in must_include if m != answer]
    others = [p for p in pool if p not in chosen]
    extra = rng.permutation(len(others))[: n - len(chosen)]
    chosen += [others[int(i)] for i in extra]
    return [chosen[int(i)] for i in rng.permutation(len(chosen))]


def _resolve_seed(split: str, seed: int | None) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {SPLITS}")
    return SPLIT_SEEDS[split] if seed is None else int(seed)


def _check_task(task: str) -> TaskSpec:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; one of {TASK_NAMES}")
    return TASKS[task]


def plan_example(
    task: str,
    index: int,
    split: str = "train",
    seed: int | None = None,
    min_seconds: float = 15.0,
    max_seconds: float = 90.0,
) -> Plan:
    """Draw the text-level plan of example ``index`` (no audio is synthesized)."""
    spec = _check_task(task)
    seed = _resolve_seed(split, seed)
    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f"need 0 < min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")
    rng = streams(seed, split, task, index)[0]
    seconds = float(rng.uniform(min_seconds, max_seconds))
    # informative segments are a few seconds, shorter when the clip is very short
    seg = min(float(rng.uniform(3.0, 6.0)), max(1.0, 0.5 * seconds))
    label = _balanced_label(spec.labels, seed, split, task, index) if task != "digits" else ""
    meta: dict[str, Any] = {}
    items: list[dict[str, Any]]
    choices: list[str] = []

    if task == "digits":
        words = [DIGITS[int(i)] for i in rng.integers(0, 10, size=int(rng.integers(3, 5)))]
        voice = random_voice(rng)
        sep = ", " if rng.random() < 0.5 else " "
        answer = " ".join(words)
        question = QUESTIONS["digits"]
        items = [{"kind": "speech", "text": sep.join(words), "voice": voice}]
        meta["voice"] = voice.as_dict()
    elif task == "spoken_qa":
        slots = {
            "colour": COLOURS[int(rng.integers(6))],
            "animal": ANIMALS[int(rng.integers(6))],
            "place": PLACES[int(rng.integers(6))],
        }
        # the balanced label decides which slot is asked, and its value
        slot = "colour" if label in COLOURS else "animal" if label in ANIMALS else "place"
        slots[slot] = label
        template = QA_TEMPLATES[int(rng.integers(len(QA_TEMPLATES)))]
        voice = random_voice(rng)
        question = QUESTIONS[f"qa_{slot}"].format(**slots)
        answer = label
        pool = {"colour": COLOURS, "animal": ANIMALS, "place": PLACES}[slot]
        choices = _choices(rng, answer, pool, 4)
        items = [{"kind": "speech", "text": template.format(**slots), "voice": voice}]
        meta.update(voice=voice.as_dict(), slots=slots, asked=slot)
    elif task == "sound_event":
        answer, question = label, QUESTIONS[task]
        choices = _choices(rng, answer, sounds.SOUND_EVENTS, 4)
        items = [{"kind": "event", "name": answer}]
    elif task == "scene":
        answer, question = label, QUESTIONS[task]
        choices = _choices(rng, answer, sounds.SCENES, 4)
        items = [{"kind": "scene", "name": answer, "seconds": seg}]
    elif task == "melody":
        answer, question = label, QUESTIONS[task]
        choices = _choices(rng, answer, sounds.MELODY_STYLES, 4)
        items = [{"kind": "melody", "style": answer, "seconds": seg}]
    elif task == "gender":
        answer, question = label, QUESTIONS[task]
        choices = list(GENDERS)
        voice = random_voice(rng, gender=answer)
        picks = rng.permutation(len(NEUTRAL_SENTENCES))[:2]
        text = ". ".join(NEUTRAL_SENTENCES[int(i)] for i in picks)
        items = [{"kind": "speech", "text": text, "voice": voice}]
        meta["voice"] = voice.as_dict()
    elif task == "sound_after_word":
        answer = label
        other = [e for e in sounds.SOUND_EVENTS if e != answer][
            int(rng.integers(len(sounds.SOUND_EVENTS) - 1))
        ]
        w = rng.permutation(len(CUE_WORDS))[:2]
        word, other_word = CUE_WORDS[int(w[0])], CUE_WORDS[int(w[1])]
        voice = random_voice(rng)
        question = QUESTIONS[task].format(word=word)
        choices = _choices(rng, answer, sounds.SOUND_EVENTS, 4, must_include=[other])
        items = [
            {
                "kind": "word_sound",
                "word": word,
                "event": answer,
                "voice": voice,
                "gap": float(rng.uniform(0.15, 0.4)),
            },
            {
                "kind": "word_sound",
                "word": other_word,
                "event": other,
                "voice": voice,
                "gap": float(rng.uniform(0.15, 0.4)),
            },
        ]
        meta.update(voice=voice.as_dict(), pairs={word: answer, other_word: other})
    else:  # pragma: no cover - TASKS and this chain are kept in sync
        raise AssertionError(task)

    if spec.n_choices:
        assert len(choices) == spec.n_choices and answer in choices
    return Plan(task, split, seed, index, seconds, question, choices, answer, items, meta, max_seconds)


def letters(n: int) -> str:
    """``"ABCD"[:n]``."""
    return "ABCD"[:n]


def plan_to_record(
    plan: Plan,
    duration: float | None = None,
    segments: list[list[float]] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """AudioMarathon-style record (without ``path``) for a plan.

    ``answer_gt`` is the answer text (one of the choices; the transcript for ``digits``), ``answer_letter``
    its option letter (``""`` when open-ended), ``target`` the text a model is trained to reply.
    """
    ch = plan.choices + [""] * (4 - len(plan.choices))
    letter = letters(len(plan.choices))[plan.choices.index(plan.answer)] if plan.choices else ""
    rec: dict[str, Any] = {
        "question": plan.question,
        "choice_a": ch[0],
        "choice_b": ch[1],
        "choice_c": ch[2],
        "choice_d": ch[3],
        "answer_gt": plan.answer,
        "answer_letter": letter,
        "target": plan.answer,
        "task": plan.task,
        "category": plan.category,
        "split": plan.split,
        "index": plan.index,
    }
    if not plan.choices:
        rec["transcript"] = plan.answer  # the field ASR loaders look for first
    if duration is not None:
        rec["duration"] = round(float(duration), 3)
    if segments is not None:
        rec["segments"] = segments
    rec["meta"] = dict(plan.meta) if meta is None else meta
    return rec


def format_prompt(record: dict[str, Any]) -> str:
    """Default instruction text for a record: the question, lettered options when there are any, and how
    to answer. (Evaluation may build its own prompt; training should use the same one.)"""
    opts = [(c, record.get(f"choice_{c.lower()}", "")) for c in "ABCD"]
    opts = [(c, t) for c, t in opts if t]
    if not opts:
        return f"{record['question']}\nAnswer with the transcript only."
    lines = [record["question"]] + [f"{c}. {t}" for c, t in opts]
    lines.append("Answer with the option text only.")
    return "\n".join(lines)
