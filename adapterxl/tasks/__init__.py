"""The task registry: every task adapterxl knows, described as data.

A task names its family (how to encode, which head, how to decode and score), its languages, where
its data lives on the Hub and which columns of the Hub schema play which role. Adding a task is one
entry in ``TASKS``; adding a kind of task is one family module.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError
from .classification import ClassificationFamily

CLASSIFICATION = ClassificationFamily()
FAMILIES = {family.name: family for family in (CLASSIFICATION,)}

NLI_LABELS = ("entailment", "neutral", "contradiction")
XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX_LANGUAGES = ("de", "en", "es", "fr", "ja", "ko", "zh")


@dataclass(frozen=True)
class HubSource:
    """Where a task's data lives on the Hub. ``config`` may contain ``{lang}``; ``splits`` maps
    adapterxl's split names (train / validation / test) to the Hub's, listing labelled ones only."""

    path: str
    config: str | None
    splits: Mapping[str, str]
    revision: str | None = None

    def config_for(self, language: str) -> str | None:
        return self.config.format(lang=language) if self.config else None


@dataclass(frozen=True)
class Task:
    """One registry entry. ``family`` encodes, decodes and scores the task; ``columns`` maps the
    family's roles to the Hub schema's column names."""

    name: str
    family: ClassificationFamily
    languages: tuple[str, ...]
    source: HubSource
    columns: Mapping[str, str]
    labels: tuple[str, ...] = ()
    train_language: str = "en"
    description: str = ""
    kind: str = field(default="target")  # "intermediate" (English only) or "target" (zero-shot)

    @property
    def metric(self) -> str:
        return self.family.main_metric


TASKS: dict[str, Task] = {
    task.name: task
    for task in [
        Task(
            name="mnli",
            family=CLASSIFICATION,
            kind="intermediate",
            languages=("en",),
            source=HubSource("nyu-mll/glue", "mnli", {"train": "train", "validation": "validation_matched"}),
            columns={"text": "premise", "text_pair": "hypothesis", "label": "label"},
            labels=NLI_LABELS,
            description="MultiNLI, English 3-way natural language inference (393k train)",
        ),
        Task(
            name="qqp",
            family=CLASSIFICATION,
            kind="intermediate",
            languages=("en",),
            source=HubSource("nyu-mll/glue", "qqp", {"train": "train", "validation": "validation"}),
            columns={"text": "question1", "text_pair": "question2", "label": "label"},
            labels=("not_duplicate", "duplicate"),
            description="Quora Question Pairs, English paraphrase identification (364k train)",
        ),
        Task(
            name="xnli",
            family=CLASSIFICATION,
            languages=XNLI_LANGUAGES,
            source=HubSource("facebook/xnli", "{lang}", {"train": "train", "validation": "validation", "test": "test"}),
            columns={"text": "premise", "text_pair": "hypothesis", "label": "label"},
            labels=NLI_LABELS,
            description="XNLI, cross-lingual NLI in 15 languages; English train = MNLI",
        ),
        Task(
            name="pawsx",
            family=CLASSIFICATION,
            languages=PAWSX_LANGUAGES,
            source=HubSource(
                "google-research-datasets/paws-x",
                "{lang}",
                {"train": "train", "validation": "validation", "test": "test"},
            ),
            columns={"text": "sentence1", "text_pair": "sentence2", "label": "label"},
            labels=("not_paraphrase", "paraphrase"),
            description="PAWS-X, cross-lingual paraphrase identification in 7 languages",
        ),
    ]
}


def get_task(name: str) -> Task:
    """The registry entry ``name``; an unknown name is a ConfigError listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(TASKS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown task {name!r}{hint}; known tasks: {sorted(TASKS)}") from None


__all__ = ["FAMILIES", "TASKS", "HubSource", "Task", "get_task"]
