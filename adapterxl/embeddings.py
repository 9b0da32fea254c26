"""Sentence retrieval straight off an encoder (with any adapter setup): embeddings, nearest
neighbours, margin-based bitext mining (BUCC), threshold search, Tatoeba accuracy.

Everything works on plain arrays and follows the official XTREME code
(``third_party/utils_retrieve.py``): cosine similarity of L2-normalised vectors, exact k-nearest
neighbours (as faiss ``IndexFlatIP``), the ratio margin of Artetxe & Schwenk with k = 4 in both
directions, "max" retrieval with greedy one-to-one assignment, and ``bucc_optimize`` /
``bucc_extract`` for the threshold. Similarities are computed in tiles, so memory stays bounded
(two embedding matrices plus one tile) at any corpus size, and both search directions come out
of one pass over the tiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

# -- embeddings ------------------------------------------------------------------------------------


def use_bf16(setting: str | bool) -> bool:
    """bf16 autocast: on by default when a bf16-capable GPU is present, never on CPU by default."""
    if setting == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(setting)


def default_layer(num_layers: int) -> int:
    """The ``hidden_states`` index used for retrieval: 14 for 24-layer models (XLM-R large, as jiant
    and XTREME), 8 for 12-layer models (XTREME's mBERT setting), otherwise 7/12 of the depth."""
    return {24: 14, 12: 8}.get(num_layers, max(1, round(num_layers * 7 / 12)))


def embed(
    model,
    tokenizer,
    sentences: Sequence[str],
    layer: int | None = None,
    batch_size: int = 64,
    max_length: int = 512,
    bf16: bool | str = "auto",
) -> np.ndarray:
    """Sentence embeddings ``[len(sentences), hidden]`` (float32): the hidden states at
    ``hidden_states[layer]`` (index 0 is the embedding output, ``i`` the output of block ``i``),
    mean-pooled over every non-pad token including the special tokens, inputs cut at
    ``max_length``. Uses whatever adapter setup is active on ``model``. Sentences are batched by
    length; the result is in input order."""
    from . import console

    if not sentences:
        raise ValueError("embed: no sentences")
    config = model.config
    depth = config.num_hidden_layers
    layer = default_layer(depth) if layer is None else layer
    if not 0 <= layer <= depth:
        raise ValueError(f"layer {layer} does not exist: the model has hidden states 0 (embeddings) to {depth}")
    order = np.argsort([-len(s) for s in sentences], kind="stable")
    device = next(model.parameters()).device
    autocast = use_bf16(bf16) and device.type == "cuda"
    out = np.zeros((len(sentences), config.hidden_size), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=autocast):
            starts = range(0, len(order), batch_size)
            for start in console.progress(starts, desc="embedding", unit="batch", nested=True):
                index = order[start : start + batch_size]
                batch = tokenizer([sentences[i] for i in index], padding=True, truncation=True,
                                  max_length=max_length, return_tensors="pt").to(device)  # fmt: skip
                hidden = model(**batch, output_hidden_states=True).hidden_states[layer].float()
                mask = batch["attention_mask"].unsqueeze(-1).float()
                out[index] = ((hidden * mask).sum(1) / mask.sum(1)).cpu().numpy()
    finally:
        model.train(was_training)
    return out


# -- nearest neighbours ----------------------------------------------------------------------------


def _as_matrix(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty [n, dim] array of embeddings, got shape {x.shape}")
    return x


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _merge_topk(scores, index, new_scores, new_index, k: int):
    """Keep the ``k`` best of two candidate lists per row."""
    top, pos = torch.topk(torch.cat([scores, new_scores], dim=1), k, dim=1)
    return top, torch.gather(torch.cat([index, new_index], dim=1), 1, pos)


def _rescore(q: torch.Tensor, pool: torch.Tensor, candidates: torch.Tensor, k: int, block: int):
    """Exact float32 similarities of each row's candidates; the best ``k``, sorted."""
    sims, idx = [], []
    for i in range(0, len(q), block):
        cand = candidates[i : i + block]
        exact = torch.einsum("rd,rkd->rk", q[i : i + block], pool[cand])
        top, pos = torch.topk(exact, k, dim=1)
        sims.append(top)
        idx.append(torch.gather(cand, 1, pos))
    return torch.cat(sims), torch.cat(idx)


def knn(x, y, k: int, both_directions: bool = False, block: int = 4096, precision: str = "float32",
        device: str | None = None):  # fmt: skip
    """Exact cosine k-nearest neighbours of the rows of ``x`` in ``y`` (and, with
    ``both_directions``, of ``y`` in ``x``) from one tiled pass over ``x @ y.T``.

    Returns ``(sims, indices)``, arrays ``[len(x), k]`` sorted by decreasing similarity, followed by
    the reverse pair when ``both_directions``; ``k`` is capped at the pool size, as XTREME does.
    Memory: the two matrices plus a ``block x block`` tile. ``precision="bfloat16"`` computes the
    tiles in bf16 (about 4x faster where bf16 units exist), keeps ``k + 16`` candidates per row and
    re-scores them in float32, so the returned similarities are float32 cosines (a true neighbour is
    only missed if bf16 rounding pushes it below 16 others).
    """
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    x, y = _as_matrix(x, "queries"), _as_matrix(y, "pool")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"embedding sizes differ: queries have {x.shape[1]} dimensions, the pool {y.shape[1]}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    xt, yt = torch.from_numpy(normalize(x)).to(dev), torch.from_numpy(normalize(y)).to(dev)
    fast = precision == "bfloat16"
    xc, yc = (xt.bfloat16(), yt.bfloat16()) if fast else (xt, yt)
    kx, ky = min(k, len(y)), min(k, len(x))
    wx, wy = (min(kx + 16, len(y)), min(ky + 16, len(x))) if fast else (kx, ky)
    fwd = (torch.full((len(x), wx), -np.inf, device=dev), torch.full((len(x), wx), -1, dtype=torch.long, device=dev))
    bwd = (torch.full((len(y), wy), -np.inf, device=dev), torch.full((len(y), wy), -1, dtype=torch.long, device=dev))
    for i in range(0, len(x), block):
        xb = xc[i : i + block]
        for j in range(0, len(y), block):
            tile = (xb @ yc[j : j + block].T).float()
            s, idx = torch.topk(tile, min(wx, tile.shape[1]), dim=1)
            fwd_s, fwd_i = _merge_topk(fwd[0][i : i + block], fwd[1][i : i + block], s, idx + j, wx)
            fwd[0][i : i + block], fwd[1][i : i + block] = fwd_s, fwd_i
            if both_directions:
                s, idx = torch.topk(tile, min(wy, tile.shape[0]), dim=0)
                s, idx = s.T, idx.T
                bwd_s, bwd_i = _merge_topk(bwd[0][j : j + block], bwd[1][j : j + block], s, idx + i, wy)
                bwd[0][j : j + block], bwd[1][j : j + block] = bwd_s, bwd_i
    if fast:
        fwd = _rescore(xt, yt, fwd[1], kx, block)
        if both_directions:
            bwd = _rescore(yt, xt, bwd[1], ky, block)
    result = (fwd[0][:, :kx].cpu().numpy(), fwd[1][:, :kx].cpu().numpy())
    if both_directions:
        result += (bwd[0][:, :ky].cpu().numpy(), bwd[1][:, :ky].cpu().numpy())
    return result


def nearest(queries, pool, k: int = 1, **kwargs):
    """``(similarities, indices)`` of the ``k`` most cosine-similar pool rows for each query row."""
    return knn(queries, pool, k, **kwargs)


# -- bitext mining (BUCC) ----------------------------------------------------------------------------


def margin_mine(src, trg, k: int = 4, threshold: float = 0.0, **knn_options) -> list[tuple[int, int, float]]:
    """Bitext mining as XTREME's ``mine_bitext(mode="mine", retrieval="max", margin="ratio")``.

    Each pair's score is ``cos(x, y) / ((mean cos of x's k neighbours in trg + mean cos of y's k
    neighbours in src) / 2)`` (neighbour sets include the candidate; k is capped at the other
    side's size). Only the k neighbours are scored. The best target of every source and the best
    source of every target are pooled, sorted by decreasing score and accepted greedily one-to-one;
    an accepted pair is returned only if its score is strictly above ``threshold`` (as in the
    official code, a rejected pair still uses up its source and target). Returns
    ``[(src_index, trg_index, score)]`` in acceptance order.
    """
    x2y_sim, x2y_ind, y2x_sim, y2x_ind = knn(src, trg, k, both_directions=True, **knn_options)
    x, y = normalize(src), normalize(trg)
    x2y_mean, y2x_mean = x2y_sim.mean(axis=1), y2x_sim.mean(axis=1)
    # Score only the k candidates of each side: cos / ((fwd_mean + bwd_mean) / 2).
    fwd_scores = np.einsum("id,ikd->ik", x, y[x2y_ind]) / ((x2y_mean[:, None] + y2x_mean[x2y_ind]) / 2)
    bwd_scores = np.einsum("id,ikd->ik", y, x[y2x_ind]) / ((y2x_mean[:, None] + x2y_mean[y2x_ind]) / 2)
    fwd_best = x2y_ind[np.arange(len(x)), fwd_scores.argmax(axis=1)]
    bwd_best = y2x_ind[np.arange(len(y)), bwd_scores.argmax(axis=1)]
    pairs = np.concatenate([np.stack([np.arange(len(x)), fwd_best], 1), np.stack([bwd_best, np.arange(len(y))], 1)])
    scores = np.concatenate([fwd_scores.max(axis=1), bwd_scores.max(axis=1)])
    seen_src, seen_trg, out = set(), set(), []
    for i in np.argsort(-scores):  # numpy's default sort, as the official code, decides ties
        s, t = int(pairs[i, 0]), int(pairs[i, 1])
        if s not in seen_src and t not in seen_trg:
            seen_src.add(s)
            seen_trg.add(t)
            if scores[i] > threshold:
                out.append((s, t, float(scores[i])))
    return out


def bucc_candidates(mined: Iterable[tuple[float, str, str]], src_ids: Mapping[str, str],
                    trg_ids: Mapping[str, str]) -> dict[tuple[str, str], float]:  # fmt: skip
    """Mined sentence pairs ``(score, src_text, trg_text)`` -> ``{(src_id, trg_id): score}``, as the
    official ``read_candidate2score``: sentences are matched to ids by their stripped text; a text
    that has several ids on its side is dropped entirely; a repeated pair keeps its best score.
    ``src_ids`` / ``trg_ids`` map id -> sentence (the BUCC ``.{lang}`` / ``.en`` files)."""

    def text_to_id(ids: Mapping[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        repeated = set()
        for sid, text in ids.items():
            text = text.strip()
            if text in seen:
                repeated.add(text)
            seen[text] = sid
        return {t: i for t, i in seen.items() if t not in repeated}

    src_map, trg_map = text_to_id(src_ids), text_to_id(trg_ids)
    out: dict[tuple[str, str], float] = {}
    for score, src_text, trg_text in mined:
        src, trg = src_map.get(src_text.strip()), trg_map.get(trg_text.strip())
        if src is None or trg is None:
            continue
        key = (src, trg)
        out[key] = max(score, out.get(key, -np.inf))
    return out


def bucc_scores(candidates: Mapping[tuple[str, str], float] | Sequence[tuple[tuple[str, str], float]],
                gold: Iterable[tuple[str, str]], threshold: float) -> dict[str, float]:  # fmt: skip
    """Precision, recall and F1 (percent) of the pairs with ``score >= threshold``
    (``bucc_extract`` + ``bucc_eval``): recall counts gold pairs never mined."""
    items = list(candidates.items()) if isinstance(candidates, Mapping) else list(candidates)
    gold = set(map(tuple, gold))
    if not gold:
        raise ValueError("bucc_scores: the gold pair list is empty")
    extracted = {pair for pair, score in items if score >= threshold}
    correct = len(extracted & gold)
    precision = correct / len(extracted) if extracted else 0.0
    recall = correct / len(gold)
    f1 = 2 * precision * recall / (precision + recall) if correct else 0.0
    return {"threshold": threshold, "precision": 100 * precision, "recall": 100 * recall, "f1": 100 * f1}


def bucc_threshold(candidates: Mapping[tuple[str, str], float] | Sequence[tuple[tuple[str, str], float]],
                   gold: Iterable[tuple[str, str]]) -> dict[str, float]:  # fmt: skip
    """The F1-optimal threshold on ``gold`` as ``bucc_optimize``, and P/R/F1 of extracting with it.

    Candidates (``{(src_id, trg_id): score}`` or such pairs in file order) are sorted by decreasing
    score with a stable sort (ties keep their order); the threshold is the midpoint between the
    score at the first strict F1 maximum and the next score. Corner cases as the official code:
    with no correct candidate the threshold stays 0; extraction takes every candidate with
    ``score >= threshold`` (more than the optimised prefix when scores tie) and P/R/F1 are
    recomputed on it. Where the official code crashes (maximum at the last candidate: IndexError),
    the threshold is that last score.
    """
    items = list(candidates.items()) if isinstance(candidates, Mapping) else list(candidates)
    gold = set(map(tuple, gold))
    if not gold:
        raise ValueError("bucc_threshold: the gold pair list is empty")
    ranked = sorted(items, key=lambda item: -item[1])
    threshold, best_f1, correct = 0.0, 0.0, 0
    for i, (pair, score) in enumerate(ranked):
        correct += pair in gold
        if correct:
            precision, recall = correct / (i + 1), correct / len(gold)
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best_f1:
                best_f1 = f1
                threshold = (score + ranked[i + 1][1]) / 2 if i + 1 < len(ranked) else score
    return bucc_scores(items, gold, threshold)


# -- Tatoeba ----------------------------------------------------------------------------------------


def tatoeba_accuracy(src, en, direction: str = "en->xx", **knn_options) -> float:
    """Top-1 retrieval accuracy (percent) on aligned rows (row i of ``src`` translates row i of
    ``en``). ``en->xx`` (XTREME): English queries searched in the other language's sentences;
    ``xx->en``: the reverse."""
    src, en = _as_matrix(src, "src"), _as_matrix(en, "en")
    if len(src) != len(en):
        raise ValueError(f"tatoeba_accuracy: {len(src)} sentences but {len(en)} English translations; rows must align")
    if direction not in ("en->xx", "xx->en"):
        raise ValueError(f"direction must be 'en->xx' or 'xx->en', got {direction!r}")
    queries, pool = (en, src) if direction == "en->xx" else (src, en)
    _, idx = knn(queries, pool, 1, **knn_options)
    return 100.0 * float(np.mean(idx[:, 0] == np.arange(len(queries))))
