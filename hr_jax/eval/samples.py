"""What a benchmark loader yields: `Sample`s and a `LoadReport` of every problem it met."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from hr_jax.eval.audiomarathon import OFFICIAL
from hr_jax.eval.tasks import AUDIOMARATHON

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

MISSING_AUDIO = "missing_audio"
UNREADABLE_AUDIO = "unreadable_audio"
MALFORMED = "malformed"
DUPLICATE_ID = "duplicate_id"
NOT_SCORED = "not_scored"
MISSING_TASK = "missing_task"


@dataclasses.dataclass(frozen=True)
class Sample:
    """One evaluation item.

    Attributes:
        id: unique within its task; results are keyed by it (resume, report).
        audio_path: absolute path of the (first) audio file.
        question: the question (empty for ASR).
        choices: option texts, in letter order (empty for ASR).
        answer: the correct letter for multiple choice, the transcript for ASR.
        task: task key (:mod:`hr_jax.eval.tasks`).
        category: the task's group for AudioMarathon ("semantic"/"acoustic") and synth
            ("semantic"/"acoustic"/"mixed"), the MMAU-Pro category name as given in the data for
            MMAU-Pro.
        reference: the ASR transcript, None for multiple choice.
        benchmark: "audiomarathon", "mmau-pro" or "synth".
        extra_audio_paths: further clips of a multi-audio question, appended in order.
        duration_s: total audio duration in seconds (None when audio was not probed).
    """

    id: str
    audio_path: str
    question: str
    choices: tuple[str, ...]
    answer: str
    task: str
    category: str
    reference: str | None = None
    benchmark: str = AUDIOMARATHON
    extra_audio_paths: tuple[str, ...] = ()
    duration_s: float | None = None

    @property
    def audio_paths(self) -> tuple[str, ...]:
        """All audio files of the sample, in order."""
        return (self.audio_path, *self.extra_audio_paths)

    @property
    def is_asr(self) -> bool:
        """True for transcription samples (no choices, a reference transcript)."""
        return self.reference is not None


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem found while loading.

    Attributes:
        kind: missing_audio | unreadable_audio | malformed | duplicate_id | not_scored |
            missing_task (a task of "all" not downloaded).
        task: task key.
        source: the record file (or directory) the record came from.
        record: record index in a JSON list, or 1-based line number in a JSONL file.
        reason: human-readable explanation.
        dropped: False when the record was kept anyway (a renamed duplicate id).
    """

    kind: str
    task: str
    source: str
    record: int | None
    reason: str
    dropped: bool = True


@dataclasses.dataclass
class LoadReport:
    """What a loader read, kept, and why it left anything out."""

    benchmark: str
    files: list[str] = dataclasses.field(default_factory=list)
    records: int = 0
    loaded: int = 0
    not_requested: int = 0
    not_selected: int = 0  # left out by the official sample selection
    selection: str = OFFICIAL
    failed_tasks: list[str] = dataclasses.field(default_factory=list)  # records, but no audio found at all
    problems: list[Problem] = dataclasses.field(default_factory=list)

    def add(self, problem: Problem) -> None:
        """Record one problem."""
        self.problems.append(problem)

    def counts(self) -> dict[str, int]:
        """Number of problems per kind."""
        return dict(sorted(Counter(p.kind for p in self.problems).items()))

    @property
    def dropped(self) -> int:
        """Records left out because of a problem."""
        return sum(p.dropped for p in self.problems)

    def merge(self, other: LoadReport) -> None:
        """Fold another report (e.g. of another task) into this one."""
        self.files.extend(other.files)
        self.records += other.records
        self.loaded += other.loaded
        self.not_requested += other.not_requested
        self.not_selected += other.not_selected
        self.failed_tasks.extend(other.failed_tasks)
        self.problems.extend(other.problems)

    def summary(self, max_listed: int = 20) -> str:
        """A few lines for the terminal: totals, counts per kind, the first problems."""
        lines = [
            f"{self.benchmark}: {self.loaded} samples loaded from {self.records} records "
            f"in {len(self.files)} file(s); {self.dropped} left out"
            + (f"; {self.not_requested} in categories not requested" if self.not_requested else "")
            + (f"; {self.not_selected} not in the {self.selection} selection" if self.not_selected else "")
        ]
        if self.failed_tasks:
            lines.append(f"ERROR: no audio file found for tasks {', '.join(self.failed_tasks)}")
        missing = [p.task for p in self.problems if p.kind == MISSING_TASK]
        if missing:
            lines.append(f"tasks not found in the data directory (skipped): {', '.join(missing)}")
        listed = [p for p in self.problems if p.kind != MISSING_TASK]
        if listed:
            lines.append(
                "problems: " + ", ".join(f"{k}={v}" for k, v in self.counts().items() if k != MISSING_TASK)
            )
            for p in listed[:max_listed]:
                where = f"{p.source}" + (f" #{p.record}" if p.record is not None else "")
                lines.append(f"  [{p.kind}] {p.task}: {where}: {p.reason}")
            if len(listed) > max_listed:
                lines.append(f"  ... and {len(listed) - max_listed} more (see load_report.json)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "benchmark": self.benchmark,
            "files": list(self.files),
            "records": self.records,
            "loaded": self.loaded,
            "dropped": self.dropped,
            "not_requested": self.not_requested,
            "not_selected": self.not_selected,
            "selection": self.selection,
            "failed_tasks": list(self.failed_tasks),
            "counts": self.counts(),
            "problems": [dataclasses.asdict(p) for p in self.problems],
        }


def _norm_option(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def answer_letter(answer: Any, choices: Sequence[str]) -> str | None:
    """The letter of `answer`: the text of one choice, or a letter form ("B", "(b)", "B.").

    The text of a choice wins over a letter: MMAU-Pro answers with the choice text, which may itself be a
    single letter (`answer_letter("A", ["G", "D", "A", "E"])` is "C").
    """
    if answer is None:
        return None
    a = str(answer).strip()
    exact = [i for i, c in enumerate(choices) if str(c).strip() == a]
    if len(exact) == 1:
        return LETTERS[exact[0]]
    m = re.fullmatch(r"[\(\[]?([A-Za-z])[\)\]\.:]?", a)
    if m:
        idx = LETTERS.index(m.group(1).upper())
        if idx < len(choices):
            return LETTERS[idx]
    norm = _norm_option(a)
    hits = [i for i, c in enumerate(choices) if _norm_option(c) == norm]
    if len(hits) == 1:
        return LETTERS[hits[0]]
    return None
