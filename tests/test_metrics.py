"""Metric values against hand-computed cases: every quirk of the official XTREME code listed in
shared/reference/metrics.md has a test here."""

import random

import pytest

from adapterxl.metrics import (
    accuracy,
    mlqa_normalize,
    qa_scores,
    squad_normalize,
    squad_v2_scores,
    tag_chunks,
    tagging_scores,
    xtreme_score,
)

# -- classification ------------------------------------------------------------------------------


def test_accuracy_hand_computed():
    assert accuracy([0, 1, 2, 2], [0, 1, 2, 0]) == pytest.approx(75.0)
    assert accuracy([1], [1]) == 100.0
    assert accuracy([0, 0, 0], [1, 2, 1]) == 0.0


def test_accuracy_compares_as_strings_like_the_official_script():
    assert accuracy(["1", "0"], [1, 0]) == 100.0
    assert accuracy(["entailment", "neutral"], ["entailment", "contradiction"]) == 50.0


def test_accuracy_rejects_length_mismatch_and_empty():
    with pytest.raises(ValueError, match="2 predictions for 3 references"):
        accuracy([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])


# -- SQuAD v1.1 script (XQuAD, TyDiQA) ---------------------------------------------------------------


def em_f1(pred, gold, language=None):
    scores = qa_scores({"q": pred}, {"q": [gold]}, language)
    return scores["exact_match"], scores["f1"]


def test_squad_pipeline_lower_ascii_punct_articles_whitespace():
    assert squad_normalize("  The Eiffel-Tower, in PARIS!  ") == "eiffeltower in paris"
    assert em_f1("Paris.", "paris") == (100.0, 100.0)


def test_squad_strips_english_articles_in_every_language():
    assert squad_normalize("the 北京") == "北京"
    assert em_f1("a Москва", "Москва") == (100.0, 100.0)


def test_squad_keeps_unicode_punctuation_glued_to_tokens():
    assert em_f1("“quoted”", "quoted") == (0.0, 0.0)
    assert em_f1("¿qué", "qué") == (0.0, 0.0)
    assert em_f1("北京。", "北京") == (0.0, 0.0)


def test_squad_text_without_spaces_is_one_token():
    assert em_f1("北京大学", "北京") == (0.0, 0.0)  # F1 is 0 or 1 for unsegmented text
    assert em_f1("北京大学", "北京大学") == (100.0, 100.0)


def test_squad_removes_punctuation_before_articles():
    assert squad_normalize("the-end") == "theend"  # not an article any more
    assert em_f1("the-end", "end") == (0.0, 0.0)


def test_squad_article_only_answers_give_em_1_and_f1_0():
    assert em_f1("a", "the") == (100.0, 0.0)


def test_squad_f1_uses_multiset_overlap():
    # pred tokens x y y, gold y y z: overlap {y: 2} -> P = R = 2/3
    _, f1 = em_f1("x y y", "y y z")
    assert f1 == pytest.approx(100 * 2 / 3)
    _, f1 = em_f1("y y y", "y z")  # overlap {y: 1}: P = 1/3, R = 1/2 -> F1 = 0.4
    assert f1 == pytest.approx(40.0)


def test_squad_best_gold_answer_and_dataset_mean_over_all_references():
    predictions = {"q1": "Paris", "q2": "in Lyon", "extra": "ignored"}
    references = {"q1": ["London", "paris"], "q2": ["Lyon"], "q3": ["Nice"]}
    scores = qa_scores(predictions, references)
    # q1: EM 1, F1 1; q2: EM 0, F1 = 2 * (1/2 * 1) / 1.5 = 2/3; q3 missing: 0. Mean over 3.
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)


def test_qa_scores_bad_references():
    with pytest.raises(ValueError, match="has no gold answer .* squad_v2_scores"):
        qa_scores({"q": "x"}, {"q": []})
    with pytest.raises(ValueError, match="must be a list"):
        qa_scores({"q": "x"}, {"q": "x"})


# -- MLQA script --------------------------------------------------------------------------------------


def test_mlqa_removes_unicode_punctuation_and_ascii_symbols_but_not_other_symbols():
    assert mlqa_normalize("«¿Qué?»", "es") == "qué"
    assert em_f1("$100", "100", "en") == (100.0, 100.0)  # '$' is ASCII string.punctuation
    assert em_f1("<x>|~", "x", "en") == (100.0, 100.0)
    assert em_f1("100€", "100", "en") == (0.0, 0.0)  # '€' is Sc: kept
    assert em_f1("20°", "20", "en") == (0.0, 0.0)  # '°' is So: kept


@pytest.mark.parametrize(
    "language, pred, gold",
    [
        ("en", "the answer", "answer"),
        ("es", "el libro de las flores", "libro de flores"),
        ("de", "der Hund und die Katze", "Hund und Katze"),
        ("vi", "cái bàn của tôi", "bàn tôi"),
    ],
)
def test_mlqa_removes_each_languages_words(language, pred, gold):
    assert em_f1(pred, gold, language) == (100.0, 100.0)


def test_mlqa_arabic_removes_every_al_even_inside_words():
    assert mlqa_normalize("مال", "ar") == "م"
    assert em_f1("عبدالله", "عبد الله", "ar") == (100.0, 100.0)


def test_mlqa_hindi_and_chinese_keep_the():
    assert em_f1("the x", "x", "hi") == (0.0, pytest.approx(100 * 2 / 3))
    assert mlqa_normalize("the 北京", "zh") == "the 北 京"


def test_mlqa_chinese_mixed_segmentation():
    assert mlqa_normalize("北京大学 abc", "zh") == "北 京 大 学 abc"
    exact, f1 = em_f1("北京大学", "北京", "zh")  # P = 2/4, R = 1
    assert exact == 0.0 and f1 == pytest.approx(100 * 2 / 3)
    # Outside U+4E00-U+9FA5 (U+9FA6, U+3402) characters stick to their neighbours.
    assert mlqa_normalize("a\u9fa6b\u3402", "zh") == "a\u9fa6b\u3402"


def test_mlqa_unknown_language_is_an_error():
    with pytest.raises(ValueError, match="no rules for language 'fr'"):
        qa_scores({"q": "x"}, {"q": ["x"]}, "fr")


def test_mlqa_no_unicode_normalisation_and_python_lower():
    decomposed = "la\u0300 ba\u0300n"  # "là bàn" with combining accents: 'là' is not removed
    assert mlqa_normalize(decomposed, "vi") == decomposed
    assert mlqa_normalize("là bàn", "vi") == "bàn"
    assert mlqa_normalize("İ", "en") == "i\u0307"


# -- SQuAD v2 -----------------------------------------------------------------------------------------


def test_squad_v2_unanswerable_questions():
    references = {"has": ["Paris"], "none": [], "blank": ["  ", "the"]}
    scores = squad_v2_scores({"has": "paris", "none": "", "blank": "something"}, references)
    # has: 1/1; none: "" vs "" -> 1/1; blank: golds normalise to nothing -> [""] vs "something" -> 0/0
    assert scores["exact_match"] == pytest.approx(200 / 3) and scores["f1"] == pytest.approx(200 / 3)
    assert (scores["HasAns_exact"], scores["HasAns_total"]) == (100.0, 1)
    assert (scores["NoAns_exact"], scores["NoAns_total"]) == (50.0, 2)
    assert squad_v2_scores({}, {"q": ["x"]})["f1"] == 0.0  # missing prediction scores 0


# -- tagging (seqeval 0.0.12 semantics) -------------------------------------------------------------


def test_seqeval_readme_example():
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    assert tagging_scores(gold, pred) == {"precision": 50.0, "recall": 50.0, "f1": 50.0}


def test_pos_runs_of_the_same_tag_merge_into_one_chunk():
    assert tag_chunks([["NOUN", "NOUN", "VERB"]]) == {("NOUN", 0, 1), ("VERB", 2, 2)}
    gold = [["NOUN", "NOUN", "NOUN", "NOUN", "VERB"]]
    pred = [["NOUN", "NOUN", "NOUN", "VERB", "VERB"]]  # 4 of 5 tags right ...
    assert tagging_scores(gold, pred)["f1"] == 0.0  # ... but no chunk matches


def test_pos_sconj_and_sym_are_single_token_chunks_intj_continues():
    assert tag_chunks([["SCONJ", "SCONJ"]]) == {("SCONJ", 0, 0), ("SCONJ", 1, 1)}
    assert tag_chunks([["SYM", "SYM"]]) == {("SYM", 0, 0), ("SYM", 1, 1)}
    assert tag_chunks([["INTJ", "INTJ"]]) == {("INTJ", 0, 1)}
    assert tagging_scores([["SCONJ", "SCONJ"]], [["SCONJ", "NOUN"]])["f1"] == 50.0
    assert tagging_scores([["NOUN", "NOUN"]], [["NOUN", "VERB"]])["f1"] == 0.0


def test_pos_cconj_and_sconj_are_different_types():
    # seqeval >= 1.0 reads both as type "CONJ" and would score this 100.
    assert tagging_scores([["CCONJ"]], [["SCONJ"]])["f1"] == 0.0


def test_ner_non_strict_chunking():
    assert tag_chunks([["O", "I-PER", "I-PER"]]) == {("PER", 1, 2)}  # I- after O starts a chunk
    assert tag_chunks([["B-PER", "I-ORG"]]) == {("PER", 0, 0), ("ORG", 1, 1)}
    assert tag_chunks([["B-LOC", "B-LOC"]]) == {("LOC", 0, 0), ("LOC", 1, 1)}
    assert tag_chunks([["B-LOC", "I-LOC"]]) == {("LOC", 0, 1)}


def test_chunks_never_cross_sentences():
    assert tag_chunks([["B-PER"], ["I-PER"]]) == {("PER", 0, 0), ("PER", 2, 2)}


def test_all_o_scores_zero_not_hundred():
    assert tagging_scores([["O", "O"]], [["O", "O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_tagging_input_checks():
    with pytest.raises(ValueError, match="sentence 1 has 2 gold tags but 1 predicted"):
        tagging_scores([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="1 gold sentences but 2 predicted"):
        tagging_scores([["O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="lists of tag sequences"):
        tagging_scores(["O", "O"], ["O", "O"])


@pytest.mark.filterwarnings("ignore:.*ill-defined")
def test_ner_chunking_agrees_with_seqeval_on_iob_tags():
    """On BIO NER tags the 0.0.12 and 1.x semantics agree: cross-check with the real seqeval."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    rng = random.Random(0)
    tags = ["O", "O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    for _ in range(200):
        lengths = [rng.randint(1, 8) for _ in range(rng.randint(1, 4))]
        gold = [[rng.choice(tags) for _ in range(n)] for n in lengths]
        pred = [[rng.choice(tags) for _ in range(n)] for n in lengths]
        ours = tagging_scores(gold, pred)
        assert ours["f1"] == pytest.approx(100 * f1_score(gold, pred))
        assert ours["precision"] == pytest.approx(100 * precision_score(gold, pred))
        assert ours["recall"] == pytest.approx(100 * recall_score(gold, pred))


# -- benchmark aggregation -------------------------------------------------------------------------


def test_xtreme_score_task_group_and_overall():
    results = {
        "xquad": {"en": {"exact_match": 60.0, "f1": 80.0}, "de": {"exact_match": 40.0, "f1": 60.0}},
        "udpos": {"en": {"f1": 90.0, "precision": 1.0, "recall": 1.0}},
        "xnli": {"en": {"accuracy": 80.0}, "de": {"accuracy": 70.0}},
        "pawsx": {"en": {"accuracy": 90.0}},
    }
    out = xtreme_score(results)
    assert out["tasks"]["xquad"]["avg_metric"] == pytest.approx((50.0 + 70.0) / 2)  # (EM + F1) / 2
    assert out["tasks"]["udpos"]["avg_metric"] == 90.0  # F1 preferred
    assert out["tasks"]["xnli"]["avg_metric"] == 75.0  # accuracy otherwise
    assert out["groups"] == {"classification": pytest.approx((90.0 + 75.0) / 2)}  # complete groups only
    assert "all_task" not in out and "bucc2018" in out["missing_tasks"]
    assert "ar" in out["missing_languages"]["xnli"]


def test_xtreme_score_all_tasks_is_the_plain_mean():
    from adapterxl.languages import XTREME_TASK_LANGUAGES

    metric = {"xquad": "f1", "mlqa": "f1", "tydiqa": "f1", "udpos": "f1", "panx": "f1", "bucc2018": "f1"}
    results = {}
    for i, (task, langs) in enumerate(XTREME_TASK_LANGUAGES.items()):
        name = metric.get(task, "accuracy")
        scores = {name: float(10 * i)}
        if task in ("xquad", "mlqa", "tydiqa"):
            scores["exact_match"] = float(10 * i)
        results[task] = {lang: scores for lang in langs}
    out = xtreme_score(results)
    assert out["all_task"] == pytest.approx(sum(10 * i for i in range(9)) / 9)
    assert out["missing_tasks"] == [] and out["missing_languages"] == {}
    assert set(out["groups"]) == {"classification", "tagging", "qa", "retrieval"}
    with pytest.raises(ValueError, match="no task"):
        xtreme_score({"squad": {}})
    assert "xcopa" in xtreme_score({"xnli": results["xnli"]}, version="xtreme-r")["missing_tasks"]
