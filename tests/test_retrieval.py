"""Retrieval on plain arrays: exact kNN, margin mining, BUCC threshold, Tatoeba, embeddings."""

import numpy as np
import pytest
import torch

from adapterxl.embeddings import (
    bucc_candidates,
    bucc_scores,
    bucc_threshold,
    default_layer,
    embed,
    knn,
    margin_mine,
    nearest,
    normalize,
    tatoeba_accuracy,
)
from adapterxl.modeling import load_backbone


def brute_knn(x, y, k):
    sims = normalize(x) @ normalize(y).T
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, idx, axis=1), idx


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("block", [4096, 7])
def test_knn_is_exact_in_both_directions_and_any_tiling(rng, block):
    x, y = rng.normal(size=(50, 16)), rng.normal(size=(30, 16))
    fs, fi, bs, bi = knn(x, y, 4, both_directions=True, block=block)
    es, ei = brute_knn(x, y, 4)
    assert np.array_equal(fi, ei) and np.allclose(fs, es, atol=1e-6)
    es, ei = brute_knn(y, x, 4)
    assert np.array_equal(bi, ei) and np.allclose(bs, es, atol=1e-6)


def test_bfloat16_search_rescores_to_exact_float32(rng):
    x, y = rng.normal(size=(200, 64)), rng.normal(size=(300, 64))
    fs, fi = knn(x, y, 4, precision="bfloat16", block=64)
    es, ei = brute_knn(x, y, 4)
    assert np.array_equal(fi, ei) and np.allclose(fs, es, atol=1e-6)


def test_k_is_capped_at_the_pool_size_and_nearest_is_knn(rng):
    sims, idx = nearest(rng.normal(size=(5, 8)), rng.normal(size=(3, 8)), k=4)
    assert sims.shape == idx.shape == (5, 3)


def test_bad_inputs_are_clear_errors(rng):
    with pytest.raises(ValueError, match="embedding sizes differ: queries have 8 dimensions, the pool 6"):
        knn(rng.normal(size=(3, 8)), rng.normal(size=(3, 6)), 1)
    with pytest.raises(ValueError, match=r"pool: expected a non-empty \[n, dim\] array"):
        knn(rng.normal(size=(3, 8)), np.zeros((0, 8)), 1)
    with pytest.raises(ValueError, match="precision"):
        knn(rng.normal(size=(3, 8)), rng.normal(size=(3, 8)), 1, precision="int8")
    with pytest.raises(ValueError, match="rows must align"):
        tatoeba_accuracy(rng.normal(size=(3, 8)), rng.normal(size=(4, 8)))


def test_ratio_margin_against_hand_computed_values():
    # Unit vectors: cosines are plain dot products.
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[1.0, 0.0], [0.6, 0.8]])
    # k = 2 covers whole sides. cos(x0,y0)=1, cos(x0,y1)=.6, cos(x1,y0)=0, cos(x1,y1)=.8
    # fwd means: x0 (1+.6)/2=.8, x1 (.8+0)/2=.4; bwd means: y0 (1+0)/2=.5, y1 (.8+.6)/2=.7
    # score(x0,y0)=1/((.8+.5)/2)=1.53846; score(x1,y1)=.8/((.4+.7)/2)=1.45455; score(x0,y1)=.6/.75=.8
    mined = margin_mine(x, y, k=2)
    assert [(s, t) for s, t, _ in mined] == [(0, 0), (1, 1)]
    assert [round(score, 5) for _, _, score in mined] == [round(1 / 0.65, 5), round(0.8 / 0.55, 5)]


def official_mine(x, y, k=4, threshold=0.0):
    """XTREME's mine_bitext (mine / max / ratio), written out with plain loops as a reference."""
    x, y = normalize(x), normalize(y)
    sims = x @ y.T
    kx, ky = min(k, len(y)), min(k, len(x))
    x2y_ind = np.argsort(-sims, axis=1, kind="stable")[:, :kx]
    y2x_ind = np.argsort(-sims.T, axis=1, kind="stable")[:, :ky]
    x2y_mean = np.take_along_axis(sims, x2y_ind, 1).mean(1)
    y2x_mean = np.take_along_axis(sims.T, y2x_ind, 1).mean(1)
    fwd = np.array([[sims[i, j] / ((x2y_mean[i] + y2x_mean[j]) / 2) for j in x2y_ind[i]] for i in range(len(x))])
    bwd = np.array([[sims[j, i] / ((y2x_mean[i] + x2y_mean[j]) / 2) for j in y2x_ind[i]] for i in range(len(y))])
    fwd_best = x2y_ind[np.arange(len(x)), fwd.argmax(1)]
    bwd_best = y2x_ind[np.arange(len(y)), bwd.argmax(1)]
    indices = np.stack(
        (np.concatenate((np.arange(len(x)), bwd_best)), np.concatenate((fwd_best, np.arange(len(y))))), 1
    )
    scores = np.concatenate((fwd.max(1), bwd.max(1)))
    seen_src, seen_trg, out = set(), set(), []
    for i in np.argsort(-scores):
        s, t = indices[i]
        if s not in seen_src and t not in seen_trg:
            seen_src.add(s)
            seen_trg.add(t)
            if scores[i] > threshold:
                out.append((int(s), int(t), float(scores[i])))
    return out


def test_margin_mining_equals_the_official_algorithm(rng):
    trg = rng.normal(size=(60, 32))
    src = np.concatenate([trg[:40] + 0.3 * rng.normal(size=(40, 32)), rng.normal(size=(25, 32))])  # 40 true pairs
    ours, reference = margin_mine(src, trg, k=4), official_mine(src, trg, k=4)
    assert [(s, t) for s, t, _ in ours] == [(s, t) for s, t, _ in reference]
    assert np.allclose([v for *_, v in ours], [v for *_, v in reference], atol=1e-5)
    assert sum(s == t for s, t, _ in ours if s < 40) >= 38
    strict = margin_mine(src, trg, k=4, threshold=1.05)
    assert all(v > 1.05 for *_, v in strict) and len(strict) < len(ours)


def test_threshold_search_first_strict_maximum_and_midpoint():
    candidates = [(("s1", "t1"), 0.9), (("s2", "t9"), 0.8), (("s3", "t3"), 0.7), (("s4", "t4"), 0.6),
                  (("s5", "t0"), 0.5)]  # fmt: skip
    gold = [("s1", "t1"), ("s3", "t3"), ("s4", "t4"), ("s7", "t7")]  # s7 is never mined: counts for recall
    # F1 along the ranking: 1/1 -> 2/5=.4; 1/2 -> 1/3; 2/3 -> 4/7=.571; 3/4 -> 6/8=.75; 3/5 -> 2/3
    result = bucc_threshold(candidates, gold)
    assert result["threshold"] == pytest.approx((0.6 + 0.5) / 2)
    assert (result["precision"], result["recall"], result["f1"]) == pytest.approx((75.0, 75.0, 75.0))


def test_threshold_ties_keep_file_order_and_extraction_takes_all_tied_pairs():
    # Two pairs tie at 0.8; the correct one comes first in file order, so the maximum is after it.
    candidates = [(("a", "a"), 0.9), (("b", "b"), 0.8), (("c", "x"), 0.8), (("d", "y"), 0.1)]
    gold = [("a", "a"), ("b", "b")]
    result = bucc_threshold(candidates, gold)
    assert result["threshold"] == pytest.approx(0.8)  # midpoint of the tied 0.8 and 0.8
    # score >= 0.8 extracts the wrong tied pair too: P = 2/3, R = 1, recomputed on that set
    assert result["precision"] == pytest.approx(200 / 3) and result["recall"] == 100.0
    # A later equal F1 does not move the threshold: with 3 gold pairs, 1 correct of 1 and 2 correct of 5
    # both give F1 = 0.5 exactly; the threshold stays after the first.
    ranking = [(("a", "a"), 0.9), (("w", "w"), 0.8), (("x", "x"), 0.7), (("y", "y"), 0.6), (("b", "b"), 0.5),
               (("z", "z"), 0.4)]  # fmt: skip
    later = bucc_threshold(ranking, [("a", "a"), ("b", "b"), ("c", "c")])
    assert later["threshold"] == pytest.approx((0.9 + 0.8) / 2)


def test_threshold_corner_cases():
    # No correct candidate: the threshold stays 0 and everything scoring >= 0 is extracted.
    none = bucc_threshold([(("a", "x"), 0.5), (("b", "y"), -0.1)], [("a", "a")])
    assert none == {"threshold": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    # Maximum at the last candidate (the official code raises IndexError): threshold = last score.
    last = bucc_threshold([(("a", "x"), 0.9), (("b", "b"), 0.4)], [("b", "b")])
    assert last["threshold"] == 0.4 and last["recall"] == 100.0 and last["precision"] == 50.0
    with pytest.raises(ValueError, match="gold pair list is empty"):
        bucc_threshold([(("a", "a"), 1.0)], [])
    assert bucc_scores({("a", "a"): 0.2}, [("a", "a")], 0.3)["recall"] == 0.0


def test_bucc_candidates_drop_repeated_sentences_and_keep_best_pair_score():
    src_ids = {"de-1": "Hallo Welt", "de-2": "Guten Tag", "de-3": "Guten Tag", "de-4": "Danke"}
    trg_ids = {"en-1": "Hello world", "en-2": "Good day", "en-3": "Thanks"}
    mined = [(1.2, "Hallo Welt ", "Hello world"), (1.1, "Guten Tag", "Good day"), (1.0, "Danke", "Thanks"),
             (1.3, "Danke", "Thanks")]  # fmt: skip
    assert bucc_candidates(mined, src_ids, trg_ids) == {("de-1", "en-1"): 1.2, ("de-4", "en-3"): 1.3}


def test_tatoeba_both_directions():
    en = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    xx = np.array([[1.0, 0.1], [0.1, 1.0], [1.0, 0.05]])  # xx[2] sits next to xx[0]
    # en->xx: en2 = (.7,.7) finds xx1? cosines: xx0 .77, xx1 .77, xx2 .74 -> wrong; en0 finds xx2 (closer): wrong
    assert tatoeba_accuracy(xx, en, "en->xx") == pytest.approx(100 / 3)
    # xx->en: xx0 -> en0, xx1 -> en1, xx2 -> en0 (not en2): 2 of 3
    assert tatoeba_accuracy(xx, en, "xx->en") == pytest.approx(200 / 3)


def test_default_layers_follow_the_protocol():
    assert default_layer(24) == 14 and default_layer(12) == 8 and default_layer(2) == 1


def test_layer_zero_is_the_embedding_output_and_padding_does_not_change_the_mean():
    model, tok = load_backbone("tiny-xlmr")
    model.eval()
    sentences = ["the dog", "the big old dog sleeps in the garden ."]
    batched = embed(model, tok, sentences, layer=0)
    alone = embed(model, tok, sentences[:1], layer=0)
    assert np.allclose(batched[0], alone[0], atol=1e-5)  # pads of the short sentence are left out
    enc = tok(sentences[:1], return_tensors="pt")
    with torch.no_grad():
        expected = model.roberta.embeddings(input_ids=enc["input_ids"]).mean(1)[0].numpy()  # <s> and </s> included
    assert np.allclose(alone[0], expected, atol=1e-5)
    last = embed(model, tok, sentences, layer=2)
    assert not np.allclose(last, batched)
    with pytest.raises(ValueError, match="layer 3 does not exist"):
        embed(model, tok, sentences, layer=3)
