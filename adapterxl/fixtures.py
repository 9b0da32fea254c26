"""Offline stand-ins for the Hub: tiny random backbones and synthetic NLI data in the Hub schema.

Nothing here is a real model or a real dataset. The tiny backbones have the exact architecture of
XLM-R / BERT (so every code path of adapterxl runs on them) with random weights and a tokenizer
trained on the multilingual text that ships in ``resources/nli_lexicon.json``; the synthetic NLI
data follow one simple label rule in eight languages, written in the schema of ``nyu-mll/glue``
``mnli`` and ``facebook/xnli``. Results on them only show that the pipeline runs.
"""

from __future__ import annotations

import json
import random
from functools import cache
from importlib import resources
from pathlib import Path

from .files import cache_dir, save_model_folder

# Name -> architecture. Bump the version suffix whenever the build below changes, so that caches
# built by an older adapterxl are not reused.
TINY_ARCHITECTURES = {"tiny-xlmr": "xlm-roberta", "tiny-bert": "bert"}  # backbones.TINY_BACKBONES
_BUILD_VERSION = "v1"

NLI_LABELS = ("entailment", "neutral", "contradiction")  # MNLI / XNLI ClassLabel order


@cache
def lexicon() -> dict:
    """The parallel word lists and sentence templates that ship with the package."""
    text = resources.files("adapterxl").joinpath("resources/nli_lexicon.json").read_text("utf-8")
    return json.loads(text)


def fixture_languages() -> tuple[str, ...]:
    """Languages of the synthetic NLI data (English first)."""
    return tuple(lexicon()["languages"])


def _fill(template: str, lang: str, **slots: dict) -> str:
    return template.format(**{k: v[lang] for k, v in slots.items()})


def nli_examples(lang: str, n: int, seed: int) -> list[dict]:
    """``n`` synthetic NLI examples in ``lang``: dicts with premise, hypothesis and label (0-2).

    The same seed gives the same examples in every language (a parallel corpus), as XNLI is.
    The label follows from the hypothesis, as in real NLI data: restating the premise's attribute,
    place or action entails it; negating one of them (or using the attribute's antonym)
    contradicts it; a statement about another subject is neutral.
    """
    lex = lexicon()
    if lang not in lex["languages"]:
        raise ValueError(f"no synthetic data for language {lang!r}; have {lex['languages']}")
    tpl = lex["templates"][lang]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        noun, other_noun = rng.sample(lex["nouns"], 2)
        place, other_place = rng.sample(lex["places"], 2)
        verb = rng.choice(lex["verbs"])
        pair, other_pair = rng.sample(lex["adjective_pairs"], 2)
        flip = rng.random() < 0.5
        adj, antonym = (pair[1], pair[0]) if flip else (pair[0], pair[1])
        unrelated = rng.choice(other_pair)
        label = rng.randrange(3)
        kind, slots = rng.choice(
            [
                [
                    ("attr", {"noun": noun, "adj": adj}),
                    ("loc", {"noun": noun, "place": place}),
                    ("act", {"noun": noun, "verb": verb}),
                ],
                [
                    ("attr", {"noun": other_noun, "adj": unrelated}),
                    ("act", {"noun": other_noun, "verb": verb}),
                    ("loc", {"noun": other_noun, "place": other_place}),
                ],
                [
                    ("neg", {"noun": noun, "adj": adj}),
                    ("negact", {"noun": noun, "verb": verb}),
                    ("attr", {"noun": noun, "adj": antonym}),
                ],
            ][label]
        )
        premise = _fill(tpl["premise"], lang, adj=adj, noun=noun, verb=verb, place=place)
        out.append({"premise": premise, "hypothesis": _fill(tpl[kind], lang, **slots), "label": label})
    return out


def multilingual_text(lines_per_language: int = 400) -> list[str]:
    """The multilingual training text of the tiny tokenizers: every lexicon word and many
    sentences built from the templates, in all fixture languages."""
    lex = lexicon()
    lines = []
    for lang in lex["languages"]:
        words = [row[lang] for key in ("nouns", "places", "verbs") for row in lex[key]]
        words += [row[lang] for pair in lex["adjective_pairs"] for row in pair]
        lines.append(" ".join(words))
        for ex in nli_examples(lang, lines_per_language, seed=1234):
            lines += [ex["premise"], ex["hypothesis"]]
    return lines


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` as JSON Lines (UTF-8), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_nli_fixture(
    root: Path,
    *,
    mnli_train: int = 2000,
    xnli_train: int = 300,
    dev: int = 300,
    languages: tuple[str, ...] | None = None,
) -> dict[str, dict[str, str]]:
    """Write MNLI-like and XNLI-like JSON Lines files under ``root`` in the Hub schemas.

    MNLI (``nyu-mll/glue`` ``mnli``): premise, hypothesis, label, idx; English only.
    XNLI (``facebook/xnli``): premise, hypothesis, label; one file per language and split.
    Returns, per task, the ``data_files`` mapping a run config takes (``{lang}`` templated).
    """
    root = Path(root)
    languages = languages or fixture_languages()
    mnli = {"train": nli_examples("en", mnli_train, seed=1), "validation": nli_examples("en", dev, seed=2)}
    for split, rows in mnli.items():
        write_jsonl(root / "mnli" / f"{split}.jsonl", [dict(r, idx=i) for i, r in enumerate(rows)])
    # Different seeds from MNLI: the target task sees new sentences, like a real target task.
    for lang in languages:
        write_jsonl(root / "xnli" / lang / "train.jsonl", nli_examples(lang, xnli_train, seed=3))
        for split, seed in (("validation", 4), ("test", 5)):
            write_jsonl(root / "xnli" / lang / f"{split}.jsonl", nli_examples(lang, dev, seed=seed))
    return {
        "mnli": {s: str(root / "mnli" / f"{s}.jsonl") for s in ("train", "validation")},
        "xnli": {s: str(root / "xnli" / "{lang}" / f"{s}.jsonl") for s in ("train", "validation", "test")},
    }


def write_text_fixture(root: Path, languages: tuple[str, ...], lines: int = 300, seed: int = 11) -> str:
    """Plain-text corpora (one sentence per line, ``root/text/{lang}.txt``) for MLM runs; returns
    the ``{lang}`` path template for ``data.data_files.train``."""
    root = Path(root) / "text"
    root.mkdir(parents=True, exist_ok=True)
    for lang in languages:
        rows = nli_examples(lang, lines, seed=seed)
        (root / f"{lang}.txt").write_text("\n".join(r["premise"] for r in rows) + "\n", encoding="utf-8")
    return str(root / "{lang}.txt")


# Function words for the tagging fixtures (languages without articles have none).
_DETERMINERS = {"en": "the", "de": "der", "fr": "le", "es": "el"}
_ADPOSITIONS = {"en": "in", "de": "im", "fr": "dans", "es": "en", "ru": "в", "ar": "في", "tr": "içinde", "zh": "在"}
_PERSONS = ["Anna Weber", "Li Wei", "Ivan Petrov", "Maria Garcia", "Ahmed Hassan", "Ayşe Yılmaz", "Jean Dupont"]
_LOCATIONS = ["Berlin", "Paris", "Madrid", "Kairo", "Istanbul", "Beijing", "New York", "Rio de Janeiro"]
_ORGANIZATIONS = ["Siemens", "Red Cross", "World Bank", "Nokia", "United Nations"]


def write_per_language(
    root: Path, languages, train: int, dev: int, seed: int, rows_for, skip=lambda lang, split: False
) -> dict[str, str]:
    """Write ``rows_for(text_language, language, n, seed)`` to ``root/{lang}/{split}.jsonl`` for
    every language and split (train: ``train`` rows, validation / test: ``dev``; seeds ``seed``,
    ``seed + 1``, ``seed + 2``), unless ``skip(lang, split)``. Languages outside the lexicon take the
    words of one of its languages. Returns the ``data_files`` mapping (``{lang}`` templated)."""
    root = Path(root)
    have = fixture_languages()
    for i, lang in enumerate(languages):
        source = lang if lang in have else have[i % len(have)]
        for split, n, split_seed in (("train", train, seed), ("validation", dev, seed + 1), ("test", dev, seed + 2)):
            if not skip(lang, split):
                write_jsonl(root / lang / f"{split}.jsonl", rows_for(source, lang, n, split_seed))
    return {s: str(root / "{lang}" / f"{s}.jsonl") for s in ("train", "validation", "test")}


def tagging_examples(lang: str, n: int, seed: int, scheme: str) -> list[dict]:
    """``n`` synthetic tagged sentences in ``lang``: ``scheme="upos"`` gives google/xtreme udpos
    rows (tokens, pos_tags as UPOS names), ``"ner"`` PAN-X rows (tokens, ner_tags as IOB2 names,
    langs). Parallel across languages for the same seed."""
    lex = lexicon()
    if lang not in lex["languages"]:
        raise ValueError(f"no synthetic data for language {lang!r}; have {lex['languages']}")
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        noun, place, verb = rng.choice(lex["nouns"]), rng.choice(lex["places"]), rng.choice(lex["verbs"])
        adj = rng.choice(rng.choice(lex["adjective_pairs"]))
        det = [(_DETERMINERS[lang], "DET", "O")] if lang in _DETERMINERS else []
        verb_words = [(w, "VERB", "O") for w in verb[lang].split()]
        where = [(_ADPOSITIONS[lang], "ADP", "O")]
        if scheme == "upos":
            words = [
                *det,
                (adj[lang], "ADJ", "O"),
                (noun[lang], "NOUN", "O"),
                *verb_words,
                *where,
                *det,
                (place[lang], "NOUN", "O"),
                (".", "PUNCT", "O"),
            ]
        else:
            kind, names = rng.choice([("PER", _PERSONS), ("ORG", _ORGANIZATIONS)])
            subject = rng.choice(names).split()
            location = rng.choice(_LOCATIONS).split()
            words = [(w, "PROPN", ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(subject)]
            words += [*verb_words, *where]
            words += [(w, "PROPN", ("B-" if i == 0 else "I-") + "LOC") for i, w in enumerate(location)]
            words += [(".", "PUNCT", "O")]
        tokens = [w for w, _, _ in words]
        if scheme == "upos":
            rows.append({"tokens": tokens, "pos_tags": [t for _, t, _ in words]})
        else:
            rows.append({"tokens": tokens, "ner_tags": [t for _, _, t in words], "langs": [lang] * len(tokens)})
    return rows


def write_tagging_fixture(
    root: Path,
    scheme: str,
    languages: tuple[str, ...] | None = None,
    train: int = 200,
    dev: int = 60,
    test_only: tuple[str, ...] = (),
) -> dict[str, str]:
    """Write UDPOS-like (``upos``) or PAN-X-like (``ner``) JSON Lines files per language and split
    under ``root``, tags as ClassLabel indices like the Hub's; returns the ``data_files`` mapping
    (``{lang}`` templated). Languages outside the lexicon reuse one of its languages' words;
    ``test_only`` languages get no validation file (as UDPOS kk, th, tl, yo)."""
    from .tasks import NER_TAGS, UPOS_TAGS

    column, names = ("pos_tags", UPOS_TAGS) if scheme == "upos" else ("ner_tags", NER_TAGS)

    def rows_for(source, lang, n, seed):
        rows = tagging_examples(source, n, seed, scheme)
        for row in rows:
            row[column] = [names.index(t) for t in row[column]]
        return rows

    return write_per_language(
        root,
        languages or fixture_languages(),
        train,
        dev,
        11,
        rows_for,
        skip=lambda lang, split: split == "validation" and lang in test_only,
    )


MC_SCHEMAS = ("hellaswag", "cosmosqa", "csqa", "siqa", "copa")
_MC_CHOICES = {"hellaswag": 4, "cosmosqa": 4, "csqa": 5, "siqa": 3, "copa": 2}


def choice_examples(lang: str, n: int, seed: int, schema: str) -> list[dict]:
    """``n`` synthetic multiple-choice rows in the Hub schema of ``schema`` (hellaswag: Rowan/hellaswag,
    cosmosqa: allenai/cosmos_qa, csqa: tau/commonsense_qa, siqa: allenai/social_i_qa, copa:
    SuperGLUE COPA / cambridgeltl/xcopa). The right choice restates the context; the others come
    from other contexts."""
    k = _MC_CHOICES[schema]
    pool = nli_examples(lang, 6 * n + 30, seed)
    entailed = [e for e in pool if e["label"] == 0]
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        example = entailed[i % len(entailed)]
        answer = rng.randrange(k)
        choices = [rng.choice(pool)["hypothesis"] for _ in range(k - 1)]
        choices.insert(answer, example["hypothesis"])
        context = example["premise"]
        if schema == "hellaswag":
            rows.append(
                {
                    "ind": i,
                    "activity_label": "fixture",
                    "ctx_a": context,
                    "ctx_b": "",
                    "ctx": context,
                    "endings": choices,
                    "source_id": f"fixture~{i}",
                    "split_type": "indomain",
                    "label": str(answer),
                }
            )
        elif schema == "cosmosqa":
            rows.append(
                {
                    "id": f"c{i}",
                    "context": context,
                    "question": "What is true?",
                    **{f"answer{j}": c for j, c in enumerate(choices)},
                    "label": answer,
                }
            )
        elif schema == "csqa":
            letters = "ABCDE"
            rows.append(
                {
                    "id": f"q{i}",
                    "question": context,
                    "question_concept": "fixture",
                    "choices": {"label": list(letters), "text": choices},
                    "answerKey": letters[answer],
                }
            )
        elif schema == "siqa":
            rows.append(
                {
                    "context": context,
                    "question": "What is true?",
                    **{f"answer{c}": t for c, t in zip("ABC", choices, strict=True)},
                    "label": str(answer + 1),
                }
            )
        else:
            rows.append(
                {
                    "premise": context,
                    "choice1": choices[0],
                    "choice2": choices[1],
                    "question": rng.choice(["cause", "effect"]),
                    "label": answer,
                    "idx": i,
                }
            )
    return rows


def write_choice_fixture(
    root: Path, schema: str, languages: tuple[str, ...] = ("en",), train: int = 120, dev: int = 40
) -> dict[str, str]:
    """Write multiple-choice JSON Lines files per language and split under ``root`` in the Hub
    schema of ``schema``; returns the ``data_files`` mapping (``{lang}`` templated). Languages
    outside the lexicon reuse one of its languages' words."""
    return write_per_language(
        root, languages, train, dev, 21, lambda source, lang, n, seed: choice_examples(source, n, seed, schema)
    )


def qa_examples(lang: str, n: int, seed: int, unanswerable: float = 0.0, id_prefix: str = "") -> list[dict]:
    """``n`` synthetic extractive-QA rows in the SQuAD schema (id, title, context, question,
    answers{text, answer_start}): the context has three sentences, the question restates one
    sentence's subject and action, the answer is its place. With probability ``unanswerable`` the
    question is about a subject that is not in the context and has no answer (SQuAD v2 style)."""
    lex = lexicon()
    tpl = lex["templates"][lang]
    rng = random.Random(seed)
    sep = "" if lang == "zh" else " "
    rows = []
    for i in range(n):
        nouns = rng.sample(lex["nouns"], 4)
        places = rng.sample(lex["places"], 3)
        verbs = [rng.choice(lex["verbs"]) for _ in range(3)]
        adjs = [rng.choice(rng.choice(lex["adjective_pairs"])) for _ in range(3)]
        sentences = [
            _fill(tpl["premise"], lang, adj=a, noun=o, verb=v, place=p)
            for a, o, v, p in zip(adjs, nouns, verbs, places, strict=False)
        ]
        context = sep.join(sentences)
        k = rng.randrange(3)
        if rng.random() < unanswerable:
            question = _fill(tpl["act"], lang, noun=nouns[3], verb=verbs[k])
            answers = {"text": [], "answer_start": []}
        else:
            question = _fill(tpl["act"], lang, noun=nouns[k], verb=verbs[k])
            answer = places[k][lang]
            start = sum(len(x) + len(sep) for x in sentences[:k]) + sentences[k].index(answer)
            answers = {"text": [answer], "answer_start": [start]}
        rows.append(
            {
                "id": f"{id_prefix}{lang}-{seed}-{i}",
                "title": "fixture",
                "context": context,
                "question": question,
                "answers": answers,
            }
        )
    return rows


def write_qa_fixture(
    root: Path,
    languages: tuple[str, ...] = ("en",),
    train: int = 120,
    dev: int = 40,
    unanswerable: float = 0.0,
    id_prefixes: dict[str, str] | None = None,
) -> dict[str, str]:
    """Write SQuAD-schema JSON Lines files per language and split under ``root``; returns the
    ``data_files`` mapping (``{lang}`` templated). With ``id_prefixes`` ({lang: prefix}) the ids
    start with ``prefix-`` and one mixed file per split (TyDiQA-GoldP's layout) is written too,
    as ``root/mixed/{split}.jsonl``."""
    mixed: dict[str, list] = {}

    def rows_for(source, lang, n, seed):
        rows = qa_examples(source, n, seed, unanswerable, f"{id_prefixes[lang]}-" if id_prefixes else "")
        mixed.setdefault(seed, []).extend(rows)
        return rows

    files = write_per_language(root, languages, train, dev, 31, rows_for)
    for seed, split in ((31, "train"), (32, "validation"), (33, "test")):
        if id_prefixes:
            write_jsonl(Path(root) / "mixed" / f"{split}.jsonl", mixed[seed])
    return files


def _train_tokenizer(arch: str):
    """Train a tokenizer of the architecture's kind on the shipped multilingual text."""
    from tokenizers import SentencePieceBPETokenizer, processors
    from tokenizers.implementations import BertWordPieceTokenizer
    from transformers import BertTokenizerFast, XLMRobertaTokenizerFast

    text = multilingual_text()
    if arch == "xlm-roberta":
        # SentencePiece-style subwords with the "▁" word marker and XLM-R's special tokens and ids.
        # (BPE rather than XLM-R's unigram model: on this small corpus the unigram trainer stops at
        # single characters for common words, which makes a poor smoke-test tokenizer.)
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok = SentencePieceBPETokenizer(unk_token="<unk>")
        tok.train_from_iterator(text, vocab_size=1500, special_tokens=specials)
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>",
            pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", 0), ("</s>", 2)],
        )
        return XLMRobertaTokenizerFast(
            tokenizer_object=tok._tokenizer,
            bos_token="<s>",
            eos_token="</s>",
            sep_token="</s>",
            cls_token="<s>",
            unk_token="<unk>",
            pad_token="<pad>",
            mask_token="<mask>",
            model_max_length=512,
        )
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    tok.train_from_iterator(text, vocab_size=1500, special_tokens=specials)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return BertTokenizerFast(
        tokenizer_object=tok._tokenizer,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        do_lower_case=False,
        model_max_length=512,
    )


def _tiny_config(arch: str, tokenizer):
    from transformers import BertConfig, XLMRobertaConfig

    # A wider init than BERT's 0.02: with 0.02, a frozen random 2-layer model maps every input to
    # nearly the same first-token vector, and adapters on it cannot learn anything. No dropout, so
    # that tests can check that every mode memorises a tiny training set in a few steps.
    shape = dict(
        initializer_range=0.1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
    )
    if arch == "xlm-roberta":
        # XLM-R offsets positions by padding_idx + 1, hence 512 + 2 positions.
        return XLMRobertaConfig(max_position_embeddings=514, type_vocab_size=1, bos_token_id=0, eos_token_id=2, **shape)
    return BertConfig(max_position_embeddings=512, type_vocab_size=2, **shape)


def build_tiny_backbone(name: str, root: Path | None = None) -> Path:
    """Build (once, then reuse) the tiny random backbone ``name`` and return its folder.

    The folder holds a ``save_pretrained`` model and tokenizer, loadable by ``from_pretrained``
    like any Hub checkpoint. Weights are seeded, so every build is identical.
    """
    if name not in TINY_ARCHITECTURES:
        raise ValueError(f"unknown tiny backbone {name!r}; choose one of {sorted(TINY_ARCHITECTURES)}")
    root = Path(root) if root else cache_dir() / "backbones"
    target = root / f"{name}-{_BUILD_VERSION}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModel

    arch = TINY_ARCHITECTURES[name]
    tokenizer = _train_tokenizer(arch)
    with torch.random.fork_rng(devices=[]):  # building must not move the caller's random state
        torch.manual_seed(0)
        model = AutoModel.from_config(_tiny_config(arch, tokenizer))
    return save_model_folder(model, tokenizer, target)


def build_tiny_translator(root: Path | None = None) -> Path:
    """A tiny random BART translation model (1+1 layers) with the tiny XLM-R tokenizer, for
    offline tests of ``translate``: its output is noise, its interface is a real seq2seq model's."""
    root = Path(root) if root else cache_dir() / "backbones"
    target = root / f"tiny-translator-{_BUILD_VERSION}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_backbone("tiny-xlmr"))
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        init_std=1.0,  # large random weights: varied (if meaningless) output tokens
    )
    torch.manual_seed(0)
    return save_model_folder(BartForConditionalGeneration(config), tokenizer, target)


# --- Hub repositories in their published layouts -------------------------------------------------


def hub_features(spec: dict):
    """``datasets.Features`` from a dataset card's ``features`` (README YAML style, as the Hub
    publishes them: ``{"label": {"dtype": {"class_label": {"names": {...}}}}, ...}``)."""
    import datasets

    return datasets.Features._from_yaml_list([{"name": name, **value} for name, value in spec.items()])


def _empty(feature):
    """A value of ``feature``'s type for columns a fixture row does not fill (``idx``, ``langs``, ...)."""
    import datasets

    if isinstance(feature, dict):
        return {k: _empty(v) for k, v in feature.items()}
    if isinstance(feature, datasets.Sequence):
        inner = feature.feature
        return {k: [] for k in inner} if isinstance(inner, dict) else []
    if isinstance(feature, list | datasets.List | datasets.LargeList):
        return []
    if isinstance(feature, datasets.ClassLabel):
        return 0
    dtype = getattr(feature, "dtype", "string")
    return "" if dtype in ("string", "large_string") else False if dtype == "bool" else 0


def hub_rows(rows: list[dict], features) -> list[dict]:
    """``rows`` with exactly the columns of ``features``, in their order; columns a row lacks get an
    empty value of their type. Values are left as they are, so ``Dataset.from_list(rows, features)``
    fails on a value the published schema cannot hold (a label name where the Hub has an integer)."""
    return [{name: row[name] if name in row else _empty(feature) for name, feature in features.items()} for row in rows]


def write_hub_repo(root: Path, repo: str, data: dict, features: dict, layout: str = "main") -> Path:
    """Write a local copy of a Hub dataset repo in its published layout and return its folder.

    ``data``: ``{config: {hub split: rows}}``; ``features``: ``{config: datasets.Features}``. Every
    split is one parquet file with the features in its schema (ClassLabel, nested sequences), as
    the Hub's parquet files are. ``layout``:

    - ``"main"``: ``{config}/{split}-00000-of-00001.parquet`` and a README whose ``configs:`` block
      names each config and its splits (how parquet repos declare configs and split names such as
      ``validation_matched``);
    - ``"parquet-branch"``: ``{config}/{split}/0000.parquet`` and no README, as a
      ``refs/convert/parquet`` branch (``datasets`` then sees one ``default`` config over all folders).
    """
    import datasets
    import yaml

    folder = Path(root) / repo.replace("/", "--") / ("refs-convert-parquet" if layout == "parquet-branch" else "main")
    configs = []
    for config, splits in data.items():
        files = []
        for split, rows in splits.items():
            relative = f"{config}/{split}/0000.parquet" if layout == "parquet-branch" else (
                f"{config}/{split}-00000-of-00001.parquet"
            )  # fmt: skip
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            feats = features[config]
            datasets.Dataset.from_list(hub_rows(rows, feats), features=feats).to_parquet(str(folder / relative))
            files.append({"split": split, "path": relative})
        configs.append({"config_name": config, "data_files": files})
    if layout == "main":
        card = yaml.safe_dump({"configs": configs}, sort_keys=False)
        (folder / "README.md").write_text(f"---\n{card}---\n", encoding="utf-8")
    return folder


class HubStub:
    """Stands in for the network only: ``datasets.load_dataset(repo, config, revision=R, ...)`` on a
    repo written by :func:`write_hub_repo` loads that local copy with the real ``datasets`` loader
    (configs, split names, ``data_dir`` and features resolved as on the Hub). Other repos or
    revisions fail as the Hub does for a repo that does not exist. ``calls`` records each call."""

    def __init__(self, repos: dict[tuple[str, str | None], Path]):
        import datasets

        self.repos, self.calls, self._load = dict(repos), [], datasets.load_dataset

    def __call__(self, path, name=None, *, split=None, revision=None, **options):
        self.calls.append({"path": path, "name": name, "split": split, "revision": revision, **options})
        if (path, revision) not in self.repos:
            from datasets.exceptions import DatasetNotFoundError

            at = f" at revision {revision!r}" if revision else ""
            raise DatasetNotFoundError(f"Dataset '{path}'{at} doesn't exist on the Hub or cannot be accessed.")
        folder = self.repos[(path, revision)]
        # its own cache: datasets' cache keys of two local copies of one layout can coincide
        return self._load(str(folder), name, split=split, cache_dir=str(folder / ".cache"), **options)
