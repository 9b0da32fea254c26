"""The task registry: every task adapterxl knows, described as data.

A task names its family (how to encode, which head, how to decode and score), its languages, where
its data lives on the Hub and which columns of the Hub schema play which role. Adding a task is one
entry in ``BUILTIN_TASKS``; tasks declared in YAML live in a :class:`TaskRegistry` built from
their file and passed along; adding a kind of task is one family module.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import NAME_PATTERN, ConfigError, check_keys
from ..languages import XTREME_R_TASK_LANGUAGES
from .classification import ClassificationFamily
from .masked_lm import MaskedLMFamily
from .multiple_choice import MultipleChoiceFamily
from .qa import QAFamily
from .retrieval import FLORES_CODE, AlignedCorporaFamily, AlignedPairsFamily, BitextMiningFamily, RetrievalFamily
from .tagging import TaggingFamily

CLASSIFICATION = ClassificationFamily()
TAGGING = TaggingFamily()
MULTIPLE_CHOICE = MultipleChoiceFamily()
QA = QAFamily()
ALIGNED_PAIRS = AlignedPairsFamily()
BITEXT_MINING = BitextMiningFamily()
FLORES_CORPORA = AlignedCorporaFamily(pivot="eng_Latn", codes=FLORES_CODE, default_split="devtest")
MASKED_LM = MaskedLMFamily()
FAMILIES = {
    family.name: family
    for family in (
        CLASSIFICATION,
        TAGGING,
        MULTIPLE_CHOICE,
        QA,
        ALIGNED_PAIRS,
        BITEXT_MINING,
        FLORES_CORPORA,
        MASKED_LM,
    )
}

NLI_LABELS = ("entailment", "neutral", "contradiction")
XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX_LANGUAGES = ("de", "en", "es", "fr", "ja", "ko", "zh")
UPOS_TAGS = tuple("ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split())
NER_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
# google/xtreme names its udpos configs by language name.
UDPOS_LANGUAGE_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}  # fmt: skip
QA_COLUMNS = {"id": "id", "context": "context", "question": "question", "answers": "answers"}
# google/xtreme's tydiqa config mixes the GoldP languages; ids start with the language's name.
TYDIQA_PREFIXES = {
    "en": "english", "ar": "arabic", "bn": "bengali", "fi": "finnish", "id": "indonesian", "ko": "korean",
    "ru": "russian", "sw": "swahili", "te": "telugu",
}  # fmt: skip
# XTREME language code -> google/xtreme tatoeba config suffix (ISO 639-3 as in LASER's files).
TATOEBA_ISO3 = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa", "et": "est",
    "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar",
    "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl",
    "tr": "tur", "ur": "urd", "vi": "vie", "zh": "cmn",
}  # fmt: skip
XCOPA_LANGUAGES = ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")
PANX_LANGUAGES = tuple(
    "af ar bg bn de el en es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr ms my nl pt ru sw ta te th tl tr "
    "ur vi yo zh".split()
)

# Every XTREME / XTREME-R language, by its Wikipedia code (the MLM task's languages).
WIKIPEDIA_LANGUAGES = tuple(
    sorted({*XNLI_LANGUAGES, *PANX_LANGUAGES, *UDPOS_LANGUAGE_NAMES, *TATOEBA_ISO3, *XCOPA_LANGUAGES, "ht", "qu", "wo"})
)


@dataclass(frozen=True)
class HubSource:
    """Where a task's data lives on the Hub. ``config`` may contain ``{lang}``; ``splits`` maps
    adapterxl's split names (train / validation / test) to the Hub's, listing labelled ones only."""

    path: str
    config: str | None
    splits: Mapping[str, str | tuple[str, ...]]  # a tuple: several Hub splits, concatenated
    revision: str | None = None
    language_names: Mapping[str, str] = field(default_factory=dict)  # for configs using {name}
    # A folder of the repo that holds this config's files: on a refs/convert/parquet branch with
    # no README, datasets sees one "default" config over every folder (SuperGLUE's copa/, cb/, ...).
    data_dir: str | None = None
    gated: bool = False  # the repo asks users to accept its terms: loading needs a token
    hint: str = ""  # what to do when loading fails, beyond "use local files"

    def config_for(self, language: str) -> str | None:
        if not self.config:
            return None
        return self.config.format(lang=language, name=self.language_names.get(language, language))


@dataclass(frozen=True)
class Task:
    """One registry entry. ``family`` encodes, decodes and scores the task; ``columns`` maps the
    family's roles to the Hub schema's column names."""

    name: str
    family: ClassificationFamily | TaggingFamily | MultipleChoiceFamily | QAFamily | RetrievalFamily | MaskedLMFamily
    languages: tuple[str, ...]
    source: HubSource | None  # None: not on the Hub, local files only (no_hub_reason says why)
    columns: Mapping[str, str | tuple[str, ...]]
    labels: tuple[str, ...] = ()
    train_language: str | None = "en"  # None: the run lists its training languages (MLM)
    description: str = ""
    kind: str = field(default="target")  # "intermediate" (English only), "target" (zero-shot) or "retrieval"
    # Languages that lack a split: {language: {wanted split: split used instead}}.
    split_fallbacks: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    # Where the English training (and dev) data comes from when it is not ``source`` (XCOPA: COPA).
    train_source: HubSource | None = None
    # Configs that mix languages: {language: id prefix} selects a language's rows (TyDiQA-GoldP).
    id_prefixes: Mapping[str, str] = field(default_factory=dict)
    # More datasets whose splits of the same name are appended to the training data (ANLI+).
    extra_sources: tuple[HubSource, ...] = ()
    no_hub_reason: str = ""
    local_only_languages: tuple[str, ...] = ()  # languages the Hub source lacks: local files only
    main_metric: str = ""  # when not the family's (a declared task's metric:)
    held_out_dev: int = 0  # no validation split: hold out this many training rows per language
    # Local files per split ({lang} templated), the defaults of data.data_files (declared tasks).
    data_files: Mapping[str, str | Mapping[str, str]] = field(default_factory=dict)
    declaration: Mapping | None = None  # a task declared in YAML: its declaration, as written
    labels_from: str = ""  # labels read from training data (data.with_labels): where from

    def source_for(self, training: bool) -> HubSource | None:
        """The Hub source of the training data (train and English dev) or of the evaluation data."""
        return self.train_source if training and self.train_source is not None else self.source

    def split_for(self, language: str, split: str) -> str:
        """The split actually loaded for ``language`` when ``split`` is asked for."""
        return self.split_fallbacks.get(language, {}).get(split, split)

    @property
    def metric(self) -> str:
        return self.main_metric or self.family.main_metric

    def unseen_label_hint(self) -> str:
        """For messages about a label outside the label set: why, when the set was read from training data."""
        if not self.labels_from:
            return ""
        fix = "list every label under labels: in the task's declaration" if self.declaration else "add it there"
        return f"; these are the labels of its training data ({self.labels_from}), which never has this one: {fix}"


SQUAD = HubSource("rajpurkar/squad", "plain_text", {"train": "train", "validation": "validation"})

BUILTIN_TASKS: Mapping[str, Task] = {
    task.name: task
    for task in [
        Task(
            name="anliplus",
            family=CLASSIFICATION,
            kind="intermediate",
            languages=("en",),
            source=HubSource(
                "facebook/anli",
                "plain_text",
                {
                    "train": ("train_r1", "train_r2", "train_r3"),
                    "validation": ("dev_r1", "dev_r2", "dev_r3"),
                    "test": ("test_r1", "test_r2", "test_r3"),
                },
            ),  # fmt: skip
            extra_sources=(
                HubSource("nyu-mll/glue", "mnli", {"train": "train"}),
                HubSource("stanfordnlp/snli", "plain_text", {"train": "train"}),
            ),
            columns={"text": "premise", "text_pair": "hypothesis", "label": "label"},
            labels=NLI_LABELS,
            description="ANLI+ = ANLI R1-R3 + MNLI + SNLI (label -1 dropped), one 3-way NLI head, sampled in "
            "proportion to size (1.1M train); dev = ANLI R1-R3",
        ),
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
        Task(
            name="ccg",
            family=TAGGING,
            kind="intermediate",
            languages=("en",),
            source=None,
            no_hub_reason=(
                "CCGbank (LDC2005T13) is licensed and not on the Hub: convert it to JSON Lines, one sentence a "
                'line as {"tokens": [...], "tags": [...]} (one supertag per token), and set '
                "data.data_files.train and data.data_files.validation to those files"
            ),
            columns={"tokens": "tokens", "tags": "tags"},
            labels=(),  # the supertag set is read from the training data
            description="CCG supertagging on CCGbank (local files only; tag set from the training data)",
        ),
        Task(
            name="udpos",
            family=TAGGING,
            languages=tuple(UDPOS_LANGUAGE_NAMES),
            source=HubSource(
                "google/xtreme",
                "udpos.{name}",
                {"train": "train", "validation": "validation", "test": "test"},
                language_names=UDPOS_LANGUAGE_NAMES,
            ),
            columns={"tokens": "tokens", "tags": "pos_tags"},
            labels=UPOS_TAGS,
            split_fallbacks={lang: {"validation": "test"} for lang in ("kk", "th", "tl", "yo")},
            description="Universal Dependencies v2.5 part-of-speech tagging, 33 languages (17 UPOS tags)",
        ),
        Task(
            name="udpos_r",
            family=TAGGING,
            languages=tuple(XTREME_R_TASK_LANGUAGES["udpos"]),
            source=HubSource(
                "google/xtreme",
                "udpos.{name}",
                {"train": "train", "validation": "validation", "test": "test"},
                language_names=UDPOS_LANGUAGE_NAMES,
            ),
            columns={"tokens": "tokens", "tags": "pos_tags"},
            labels=UPOS_TAGS,
            split_fallbacks={lang: {"validation": "test"} for lang in ("kk", "th", "tl", "yo")},
            local_only_languages=("lt", "pl", "uk", "wo", "ro"),
            description="UDPOS with the XTREME-R language list (38); lt pl uk wo ro from local UD files",
        ),
        Task(
            name="wikiann",
            family=TAGGING,
            languages=tuple(XTREME_R_TASK_LANGUAGES["panx"]),
            source=HubSource(
                "unimelb-nlp/wikiann", "{lang}", {"train": "train", "validation": "validation", "test": "test"}
            ),
            columns={"tokens": "tokens", "tags": "ner_tags"},
            labels=NER_TAGS,
            description="WikiANN NER with the XTREME-R language list (48), same splits as PAN-X",
        ),
        Task(
            name="panx",
            family=TAGGING,
            languages=PANX_LANGUAGES,
            source=HubSource(
                "google/xtreme", "PAN-X.{lang}", {"train": "train", "validation": "validation", "test": "test"}
            ),
            columns={"tokens": "tokens", "tags": "ner_tags"},
            labels=NER_TAGS,
            description="PAN-X / WikiANN named entities (PER, ORG, LOC; IOB2), 40 languages",
        ),
        Task(
            name="hellaswag",
            family=MULTIPLE_CHOICE,
            kind="intermediate",
            languages=("en",),
            # A loading-script dataset: read its parquet conversion (datasets >= 4 runs no scripts).
            source=HubSource(
                "Rowan/hellaswag", None, {"train": "train", "validation": "validation"}, revision="refs/convert/parquet"
            ),
            columns={"context": "ctx", "choices": "endings", "label": "label"},
            labels=("0", "1", "2", "3"),
            description="HellaSwag, 4-way sentence completion (40k train)",
        ),
        Task(
            name="cosmosqa",
            family=MULTIPLE_CHOICE,
            kind="intermediate",
            languages=("en",),
            source=HubSource(
                "allenai/cosmos_qa",
                None,
                {"train": "train", "validation": "validation"},
                revision="refs/convert/parquet",
                hint="allenai/cosmos_qa has only a loading script on its main branch, which datasets 4+ no longer "
                "runs, and its parquet conversion (refs/convert/parquet) could not be confirmed to exist: use the "
                "original release instead (train.csv and valid.csv from https://github.com/wilburOne/cosmosqa, "
                "columns id, context, question, answer0-answer3, label) as data.data_files.train and "
                "data.data_files.validation",
            ),
            columns={
                "context": "context",
                "question": "question",
                "choices": ("answer0", "answer1", "answer2", "answer3"),
                "label": "label",
            },
            labels=("0", "1", "2", "3"),
            description="Cosmos QA, 4-way commonsense reading comprehension (25k train)",
        ),
        Task(
            name="csqa",
            family=MULTIPLE_CHOICE,
            kind="intermediate",
            languages=("en",),
            source=HubSource("tau/commonsense_qa", None, {"train": "train", "validation": "validation"}),
            columns={"context": "question", "choices": "choices.text", "label": "answerKey"},
            labels=("A", "B", "C", "D", "E"),
            description="CommonsenseQA, 5-way commonsense question answering (9.7k train)",
        ),
        Task(
            name="siqa",
            family=MULTIPLE_CHOICE,
            kind="intermediate",
            languages=("en",),
            source=HubSource(
                "allenai/social_i_qa",
                None,
                {"train": "train", "validation": "validation"},
                revision="refs/convert/parquet",
            ),
            columns={
                "context": "context",
                "question": "question",
                "choices": ("answerA", "answerB", "answerC"),
                "label": "label",
            },
            labels=("1", "2", "3"),
            description="Social IQa, 3-way social commonsense QA (33k train); XCOPA's usual intermediate task",
        ),
        Task(
            name="xcopa",
            family=MultipleChoiceFamily(
                question_prompts={"cause": "What was the cause?", "effect": "What happened as a result?"}
            ),
            languages=XCOPA_LANGUAGES,
            source=HubSource("cambridgeltl/xcopa", "{lang}", {"validation": "validation", "test": "test"}),
            # aps/super_glue's main branch is a loading script; its parquet branch holds
            # copa/{train,validation,test}/0000.parquet with no README (one "default" config).
            train_source=HubSource(
                "aps/super_glue",
                None,
                {"train": "train", "validation": "validation"},
                revision="refs/convert/parquet",
                data_dir="copa",
            ),
            columns={"context": "premise", "question": "question", "choices": ("choice1", "choice2"), "label": "label"},
            labels=("0", "1"),
            description="XCOPA, causal commonsense reasoning in 11 languages; English train = COPA (400)",
        ),
        Task(
            name="squad",
            family=QA,
            kind="intermediate",
            languages=("en",),
            source=SQUAD,
            columns=QA_COLUMNS,
            description="SQuAD v1.1, English extractive QA (88k train)",
        ),
        Task(
            name="squad_v2",
            family=QAFamily(script="squad_v2"),
            kind="intermediate",
            languages=("en",),
            source=HubSource("rajpurkar/squad_v2", "squad_v2", {"train": "train", "validation": "validation"}),
            columns=QA_COLUMNS,
            description="SQuAD v2.0, English extractive QA with unanswerable questions (130k train)",
        ),
        Task(
            name="xquad",
            family=QA,
            languages=("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"),
            source=HubSource("google/xtreme", "XQuAD.{lang}", {"validation": "validation"}),
            train_source=SQUAD,
            columns=QA_COLUMNS,
            description="XQuAD, extractive QA in 11 languages (1,190 questions each); English train = SQuAD v1.1",
        ),
        Task(
            name="mlqa",
            family=QAFamily(script="mlqa"),
            languages=("ar", "de", "en", "es", "hi", "vi", "zh"),
            source=HubSource("google/xtreme", "MLQA.{lang}.{lang}", {"validation": "validation", "test": "test"}),
            train_source=SQUAD,
            columns=QA_COLUMNS,
            description="MLQA, extractive QA in 7 languages (same-language pairs); English train = SQuAD v1.1",
        ),
        Task(
            name="tydiqa",
            family=QA,
            languages=tuple(TYDIQA_PREFIXES),
            source=HubSource("google/xtreme", "tydiqa", {"train": "train", "validation": "validation"}),
            columns=QA_COLUMNS,
            id_prefixes=TYDIQA_PREFIXES,
            description="TyDiQA-GoldP, extractive QA in 9 languages; English train only (3.7k)",
        ),
        Task(
            name="mlm",
            family=MASKED_LM,
            kind="intermediate",
            languages=WIKIPEDIA_LANGUAGES,
            source=HubSource("wikimedia/wikipedia", "20231101.{lang}", {"train": "train"}),
            columns={"text": "text"},
            train_language=None,
            held_out_dev=1000,
            description="masked language modelling on Wikipedia (or local .txt files) in data.train_languages: "
            "language adapters (MAD-X) and multilingual MLM mixed into intermediate training",
        ),
        Task(
            name="tatoeba",
            family=ALIGNED_PAIRS,
            kind="retrieval",
            languages=tuple(TATOEBA_ISO3),
            source=HubSource(
                "google/xtreme", "tatoeba.{name}", {"validation": "validation"}, language_names=TATOEBA_ISO3
            ),
            columns={"source": "source_sentence", "target": "target_sentence"},
            description="Tatoeba sentence retrieval, 36 languages x English (1,000 pairs each, fewer for jv 205, "
            "ka 746, kk 575, ml 687, sw 390, ta 307, te 234, th 548); top-1 accuracy",
        ),
        Task(
            name="bucc2018",
            family=BITEXT_MINING,
            kind="retrieval",
            languages=("de", "fr", "ru", "zh"),
            source=HubSource("google/xtreme", "bucc18.{lang}", {"validation": "validation", "test": "test"}),
            columns={"source": "source_sentence", "target": "target_sentence"},
            description="BUCC 2018 bitext mining (de fr ru zh x en), ratio margin, F1; original corpora for the "
            "faithful benchmark, the Hub copy holds gold pairs only",
        ),
        Task(
            name="flores",
            family=FLORES_CORPORA,
            kind="retrieval",
            languages=(),  # any FLORES-200 code, e.g. deu_Latn: give data.languages
            source=HubSource(
                "openlanguagedata/flores_plus", "{lang}", {"dev": "dev", "devtest": "devtest"}, gated=True
            ),
            columns={"text": "text"},
            description="FLORES-200 sentence retrieval xx <-> eng_Latn for any of its ~200 languages",
        ),
    ]
}
BUILTIN_TASKS = MappingProxyType(dict(BUILTIN_TASKS))  # read-only: declared tasks live in a TaskRegistry
TASKS = BUILTIN_TASKS  # the public name (adapterxl.TASKS)


# -- tasks declared in YAML ----------------------------------------------------------------------------

# The families a declared task can use, the column roles each needs (and may have), and its metrics.
DECLARABLE = {
    "classification": (CLASSIFICATION, ("text", "label"), ("text_pair",), ("accuracy",)),
    "tagging": (TAGGING, ("tokens", "tags"), (), ("f1", "precision", "recall")),
    "multiple_choice": (MULTIPLE_CHOICE, ("context", "choices", "label"), ("question",), ("accuracy",)),
    "qa": (QA, ("context", "question", "answers"), ("id",), ("f1", "exact_match")),
    # Retrieval: no training data, evaluated off an encoder (adapterxl retrieve, grids' retrieval:).
    "aligned_pairs": (ALIGNED_PAIRS, ("source", "target"), (), ("accuracy",)),
    "bitext_mining": (BITEXT_MINING, ("source", "target"), (), ("f1",)),
    "aligned_corpora": (None, ("text",), (), ("accuracy",)),  # one family per pivot language
}
RETRIEVAL_FAMILIES = ("aligned_pairs", "bitext_mining", "aligned_corpora")


def optional_roles(family_name: str) -> tuple[str, ...]:
    """The column roles a declared task of this family may have (used when its data has them)."""
    return DECLARABLE[family_name][2] if family_name in DECLARABLE else ()


DECLARATION_KEYS = {
    "family": f"one of {sorted(DECLARABLE)} (classification: single sentences, or pairs with a text_pair column)",
    "languages": "the evaluation languages, training language included (retrieval: the languages paired with "
    "English, or with pivot)",
    "train_language": "the language of the training and dev data (default en)",
    "kind": "target (zero-shot evaluation over its languages; default with several languages) or intermediate "
    "(retrieval families: always retrieval)",
    "pivot": "aligned_corpora: the language every other is aligned with (default en; its file is data.SPLIT with "
    "{lang} = the pivot)",
    "data": "local files per split: {train: path/{lang}/train.jsonl, validation: ..., test: ...} (globs allowed; "
    "or per language: {validation: {de: a.csv, sw: b.jsonl}}, other languages from hub; retrieval: no train)",
    "hub": "a Hub dataset: {path: owner/name, config: name or {lang} template, splits: {train: train, ...}}",
    "columns": "which column plays which role: {text: ..., text_pair: ..., label: ...} (defaults: the role names)",
    "labels": "the label list (default: the sorted labels of the training data)",
    "metric": "the main metric (default: the family's)",
    "description": "one line for `adapterxl tasks`",
}


def declare_task(name: str, spec, where: str = "tasks") -> Task:
    """A :class:`Task` from its YAML declaration; every problem is a ConfigError naming the key."""
    where = f"{where}.{name}"
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or "--" in name:
        raise ConfigError(f"{where}: a task name is letters, digits, '_' and '-' (got {name!r})")
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: declare a task as a mapping with keys {sorted(DECLARATION_KEYS)}")
    check_keys(spec, DECLARATION_KEYS, where, described=True)
    family_name = spec.get("family")
    if family_name not in DECLARABLE:
        raise ConfigError(f"{where}: family: {DECLARATION_KEYS['family']}, got {family_name!r}")
    family, required, optional, metrics = DECLARABLE[family_name]
    retrieval = family_name in RETRIEVAL_FAMILIES
    languages = spec.get("languages")
    if not isinstance(languages, list) or not languages or not all(isinstance(x, str) and x for x in languages):
        raise ConfigError(f"{where}: languages: a non-empty list of language codes, e.g. [en, de, sw]")
    if "pivot" in spec and family_name != "aligned_corpora":
        raise ConfigError(f"{where}: pivot is a key of family aligned_corpora, not {family_name}")
    if family_name == "aligned_corpora":
        pivot = spec.get("pivot", "en")
        if not isinstance(pivot, str) or not pivot or pivot in languages:
            raise ConfigError(
                f"{where}: pivot: the language the others are aligned with, not in languages; got {pivot!r}"
            )
        family = AlignedCorporaFamily(pivot=pivot)
    train_language = spec.get("train_language", "en")
    if retrieval:
        if "train_language" in spec or spec.get("kind", "retrieval") != "retrieval":
            raise ConfigError(
                f"{where}: a retrieval task ({family_name}) has no training data: drop train_language / kind"
            )
        kind = "retrieval"
    else:
        if train_language not in languages:
            raise ConfigError(f"{where}: train_language {train_language!r} is not in languages {languages}")
        kind = spec.get("kind", "target" if len(languages) > 1 else "intermediate")
        if kind not in ("target", "intermediate"):
            raise ConfigError(f"{where}: kind: target or intermediate, got {kind!r}")
    columns = spec.get("columns") or {}
    if not isinstance(columns, Mapping) or any(r not in (*required, *optional) for r in columns):
        raise ConfigError(
            f"{where}: columns maps the roles of family {family_name} ({', '.join(required)}; optional: "
            f"{', '.join(optional) or 'none'}) to column names, got {columns!r}"
        )
    for role, column in columns.items():
        several = role == "choices" and isinstance(column, list) and column and all(isinstance(c, str) for c in column)
        if not (isinstance(column, str) and column) and not several:
            raise ConfigError(
                f"{where}: columns.{role}: a column name (choices may also list one column per choice), got {column!r}"
            )
    columns = {role: columns.get(role, role) for role in required} | {r: columns[r] for r in optional if r in columns}
    columns = {role: tuple(c) if isinstance(c, list) else c for role, c in columns.items()}
    labels = spec.get("labels") or ()
    if retrieval and labels:
        raise ConfigError(f"{where}: labels: family {family_name} has no labels (it retrieves sentences)")
    if isinstance(family, QAFamily) and labels:
        raise ConfigError(f"{where}: labels: extractive QA has no labels (answers are spans of the context)")
    if not isinstance(labels, (list, tuple)) or len(set(map(str, labels))) != len(labels):
        raise ConfigError(f"{where}: labels: a list of distinct labels, got {labels!r}")
    metric = spec.get("metric", family.main_metric)
    if metric not in metrics:
        raise ConfigError(f"{where}: metric {metric!r}: family {family_name} scores {list(metrics)}")
    files, hub = spec.get("data") or {}, spec.get("hub")
    if not isinstance(files, Mapping) or any(k not in ("train", "validation", "test") for k in files):
        raise ConfigError(f"{where}: data: {DECLARATION_KEYS['data']}; got {files!r}")
    for split, value in files.items():
        per_language = isinstance(value, Mapping) and all(isinstance(v, str) and v for v in value.values())
        if not (isinstance(value, str) and value) and not per_language:
            raise ConfigError(f"{where}: data.{split}: a path (with {{lang}}), or {{language: path}}; got {value!r}")
        extra = [lang for lang in (value if per_language else ()) if lang not in languages]
        if extra:
            raise ConfigError(f"{where}: data.{split} names files for {extra}, which are not in languages {languages}")
    source = None
    if hub is not None:
        if (
            not isinstance(hub, Mapping)
            or not isinstance(hub.get("path"), str)
            or set(hub) - {"path", "config", "splits", "revision"}
        ):
            raise ConfigError(f"{where}: hub: {DECLARATION_KEYS['hub']}; got {hub!r}")
        splits = hub.get("splits") or {"train": "train", "validation": "validation", "test": "test"}
        source = HubSource(hub["path"], hub.get("config"), dict(splits), hub.get("revision"))
    if retrieval and "train" in files:
        raise ConfigError(f"{where}: data.train: a retrieval task has no training data; give validation / test files")
    if retrieval and not files and source is None:
        raise ConfigError(f"{where}: no data: give data.validation / data.test (local files, {{lang}}) or hub")
    if not retrieval and "train" not in files and not (source and "train" in source.splits):
        raise ConfigError(f"{where}: no training data: give data.train (local files) or hub (with a train split)")
    return Task(
        name=name,
        family=family,
        languages=tuple(languages),
        source=source,
        columns=columns,
        labels=tuple(str(x) for x in labels),
        train_language=train_language,
        description=spec.get("description") or f"declared {family_name} task ({', '.join(languages)})",
        kind=kind,
        main_metric=metric,
        data_files={split: dict(v) if isinstance(v, Mapping) else v for split, v in files.items()},
        declaration=dict(spec),
        no_hub_reason=f"task {name!r} is declared with local files only: give data.data_files for this split",
    )


class TaskRegistry(Mapping):
    """The tasks a run, grid, evaluation or store entry knows: the built-in ones and those
    declared in its own file. Immutable: :meth:`declare` returns a new registry, so two files that
    declare one name differently never meet, and reading a file changes no process state."""

    def __init__(self, declared: Mapping[str, Task] | None = None):
        self._declared = dict(declared or {})

    def __getitem__(self, name: str) -> Task:
        return self._declared[name] if name in self._declared else BUILTIN_TASKS[name]

    def __iter__(self):
        return iter({**BUILTIN_TASKS, **self._declared})

    def __len__(self) -> int:
        return len(BUILTIN_TASKS) + len(self._declared)

    def __repr__(self) -> str:
        return f"TaskRegistry(declared={sorted(self._declared)})"

    def __hash__(self) -> int:  # immutable; equal registries (same tasks) hash alike
        return hash(frozenset(self._declared))

    @property
    def declared(self) -> dict[str, Task]:
        """The declared tasks (name -> task), in declaration order."""
        return dict(self._declared)

    def declarations(self, names=None) -> dict[str, dict]:
        """``{name: declaration}`` of the declared tasks among ``names`` (default: all), as written:
        what a ``tasks:`` block needs to declare them again."""
        return {n: dict(t.declaration) for n, t in self._declared.items() if names is None or n in names}

    def get(self, name: str) -> Task:  # type: ignore[override]
        """The task ``name``; an unknown name is a ConfigError listing the known ones."""
        try:
            return self[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), list(self), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown task {name!r}{hint}; known tasks: {sorted(self)} (a task declared in a tasks: block is "
                "known once its file is read: the run's own config file, or --tasks FILE)"
            ) from None

    def declare(self, specs, where: str = "tasks") -> TaskRegistry:
        """A registry that also knows the tasks of a ``tasks:`` block (``{name: declaration}``). A
        built-in name, or a name this registry already has with another declaration, is a ConfigError."""
        if not isinstance(specs, Mapping):
            raise ConfigError(f"{where}: tasks: a mapping {{name: declaration}}")
        declared = dict(self._declared)
        for name, spec in specs.items():
            if name in BUILTIN_TASKS:
                raise ConfigError(f"{where}.{name}: {name!r} is a built-in task; give the declared task another name")
            task = declare_task(name, spec, where)
            if name in declared and declared[name].declaration != task.declaration:
                raise ConfigError(f"{where}.{name}: task {name!r} is declared twice, differently")
            declared[name] = task
        return TaskRegistry(declared) if declared != self._declared else self

    def merge(self, other: TaskRegistry, where: str = "tasks") -> TaskRegistry:
        """The tasks of both registries (a declared name must mean the same in both)."""
        return self.declare(other.declarations(), where) if other.declared else self


BUILTIN = TaskRegistry()  # the built-in tasks alone


def get_task(name: str, registry: TaskRegistry | None = None) -> Task:
    """The task ``name`` of ``registry`` (default: the built-in tasks); an unknown name is a
    ConfigError listing the known ones."""
    return (registry or BUILTIN).get(name)


__all__ = ["BUILTIN", "FAMILIES", "TASKS", "HubSource", "Task", "TaskRegistry", "declare_task", "get_task"]
