"""Pick the intermediate task without training the grid: transferability estimates.

For a target task and candidate intermediate adapters (store entries of one backbone), three
estimators score each candidate from frozen features, with no training:

- **LogME** (You et al. 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer
  Learning"): the target's English training data (a capped sample) embedded with the candidate's
  adapter active; the log maximum evidence of a Bayesian linear model from those features to the
  target's labels, per sample, averaged over the label columns (one-hot classes). Features by
  family: classification, the mean-pooled last hidden state; tagging, each labelled token's
  state (first sub-tokens); multiple choice, each (context, choice) pair's pooled state with the
  label "correct choice" (binary); QA, every token's state with the label start / end / neither
  (You et al. score token-level tasks on token features; the start and end indicators are the
  QA heads' targets).
- **TextEmb** (Poth et al. 2021, "What to Pre-Train on? Efficient Intermediate Task Selection"):
  the cosine similarity of the mean sentence embedding of the candidate's training inputs and of
  the target's, both from the plain backbone (no adapter).
- **Alignment** (this project; the paper's largest gains were in retrieval): how well the
  candidate setup aligns the target's languages with English, without target-language labels:
  top-1 retrieval accuracy on parallel sentences (a retrieval task, a few hundred pairs per
  language) with the candidate's adapter active, averaged over languages.

Each estimator ranks the candidates (higher is better); the combined ranking is by mean rank.
:func:`compare` puts estimates next to measured gains: Spearman rho and regret@k (points lost by
taking the estimator's top-k and the best of them, instead of the best measured candidate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ESTIMATORS = ("logme", "textemb", "alignment")


@dataclass(frozen=True)
class Evidence:
    """LogME of one label column: the evidence per sample and the fitted precisions."""

    logme: float  # log p(y | F, alpha, beta) / n at the maximising alpha, beta
    alpha: float  # prior precision of the weights
    beta: float  # noise precision
    iterations: int


def logme_column(features: np.ndarray, y: np.ndarray, max_iterations: int = 100, tol: float = 1e-6) -> Evidence:
    """The maximum evidence of ``y = F w + noise``, ``w ~ N(0, I / alpha)``, noise ``N(0, 1 / beta)``,
    over alpha and beta (MacKay's fixed point, as LogME: You et al. 2021, Algorithm 1), divided by
    the number of samples ``n``. In the eigenbasis of ``F^T F`` (eigenvalues ``s_i``):

    ``gamma = sum beta s_i / (alpha + beta s_i)``, ``m = beta (alpha I + beta F^T F)^-1 F^T y``,
    ``alpha <- gamma / m^T m``, ``beta <- (n - gamma) / |F m - y|^2``, and the log evidence
    ``n/2 log beta + d/2 log alpha - n/2 log 2 pi - beta/2 |F m - y|^2 - alpha/2 m^T m
    - 1/2 sum log(alpha + beta s_i)``."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = f.shape
    s, v = np.linalg.eigh(f.T @ f)
    s = np.clip(s, 0.0, None)
    projected = v.T @ (f.T @ y)  # F^T y in the eigenbasis
    alpha, beta = 1.0, 1.0
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        weights = beta / (alpha + beta * s)
        m = v @ (weights * projected)
        gamma = float(np.sum(beta * s / (alpha + beta * s)))
        mm = float(m @ m)
        residual = float(np.sum((f @ m - y) ** 2))
        new_alpha = gamma / max(mm, 1e-12)
        new_beta = max(n - gamma, 1e-12) / max(residual, 1e-12)
        converged = abs(new_alpha / new_beta - alpha / beta) <= tol * (alpha / beta)
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    weights = beta / (alpha + beta * s)
    m = v @ (weights * projected)
    mm = float(m @ m)
    residual = float(np.sum((f @ m - y) ** 2))
    evidence = (
        n / 2 * np.log(beta)
        + d / 2 * np.log(alpha)
        - n / 2 * np.log(2 * np.pi)
        - beta / 2 * residual
        - alpha / 2 * mm
        - 0.5 * float(np.sum(np.log(alpha + beta * s)))
    )
    return Evidence(float(evidence / n), float(alpha), float(beta), iterations)


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of integer class ``labels`` (one evidence per class, its one-hot column; their mean)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(features):
        raise ValueError(f"logme: {len(features)} feature rows but labels of shape {labels.shape}")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"logme: the labels have one class only ({classes.tolist()}): nothing to explain")
    return float(np.mean([logme_column(features, (labels == c).astype(np.float64)).logme for c in classes]))


@dataclass
class Selection:
    """Estimates for one target: scores[estimator][candidate], rankings, seconds per estimator."""

    target: str
    candidates: list[str]
    scores: dict[str, dict[str, float]]
    per_language: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # alignment
    seconds: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def ranking(self, estimator: str) -> list[str]:
        """Candidates best first; ``combined``: by mean rank over the estimators (ties: names)."""
        if estimator == "combined":
            ranks = {c: np.mean([self.ranking(e).index(c) for e in self.scores]) for c in self.candidates}
            return sorted(self.candidates, key=lambda c: (ranks[c], c))
        score = self.scores[estimator]
        return sorted(self.candidates, key=lambda c: (-score[c], c))

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "candidates": self.candidates,
            "scores": self.scores,
            "per_language": self.per_language,
            "rankings": {e: self.ranking(e) for e in [*self.scores, "combined"]},
            "seconds": self.seconds,
            "details": self.details,
        }


def regret(ranking: list[str], gains: dict[str, float], k: int) -> float:
    """Points lost by taking the best measured of the estimator's top ``k`` instead of the best
    measured candidate (0: the best is among the top k)."""
    ranked = [c for c in ranking if c in gains]
    if not ranked:
        raise ValueError("regret: no ranked candidate has a measured gain")
    return float(max(gains.values()) - max(gains[c] for c in ranked[:k]))


# -- features ----------------------------------------------------------------------------------------


def _english_train(task, data, seed: int, max_examples: int):
    """The task's English training set, capped (the run's own cap and order)."""
    import dataclasses

    from .data import load_task_data, with_labels

    cap = min(n for n in (data.max_train_examples, max_examples) if n)  # a candidate's own cap (n90) stays
    data = dataclasses.replace(data, languages=["en"], max_train_examples=cap, max_eval_examples=1)
    task = with_labels(task, data)
    train = load_task_data(task, data, seed=seed).train
    return task, data, train


def features(model, tokenizer, task, data, dataset, batch_size: int = 32, max_tokens: int = 20000):
    """``(F, y)``: frozen features of ``dataset`` (a task's raw training rows) under whatever setup is
    active on ``model``, and the labels LogME explains (see the module's docstring); ``y`` is None
    for a family without labels here. Token-level families keep at most ``max_tokens`` rows (the
    first ones, in data order)."""
    import torch

    family = task.family.name
    encoded = task.family.encode(dataset, tokenizer, data, train=True)
    collate = task.family.collator(tokenizer)
    keep = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in encoded.column_names]
    label_columns = [c for c in ("labels", "start_positions", "end_positions") if c in encoded.column_names]
    rows = encoded.select_columns(keep + label_columns)
    device = next(model.parameters()).device
    out_f, out_y = [], []
    tokens = 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                batch = collate([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
                labels = {c: batch.pop(c) for c in label_columns if c in batch}
                inputs = {k: v.to(device) for k, v in batch.items() if k in keep}
                choices = None
                if inputs["input_ids"].dim() == 3:  # multiple choice: [batch, choices, tokens]
                    choices = inputs["input_ids"].shape[1]
                    inputs = {k: v.flatten(0, 1) for k, v in inputs.items()}
                hidden = model(**inputs, output_hidden_states=True).hidden_states[-1].float()
                mask = inputs["attention_mask"].bool()
                if family in ("tagging", "qa"):
                    if family == "tagging":
                        y = labels["labels"].to(device)
                        chosen = y != -100
                    else:
                        y = torch.zeros_like(inputs["input_ids"])
                        positions = torch.arange(y.shape[1], device=device)
                        y[positions[None] == labels["start_positions"].to(device)[:, None]] = 1
                        y[positions[None] == labels["end_positions"].to(device)[:, None]] = 2
                        chosen = mask
                    out_f.append(hidden[chosen].cpu().numpy())
                    out_y.append(y[chosen].cpu().numpy())
                    tokens += int(chosen.sum())
                    if tokens >= max_tokens:
                        break
                    continue
                pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
                out_f.append(pooled.cpu().numpy())
                if choices is not None:  # one row per (context, choice): is it the right one?
                    right = labels["labels"][:, None] == torch.arange(choices)[None]
                    out_y.append(right.flatten().long().numpy())
                elif "labels" in labels:
                    out_y.append(labels["labels"].numpy())
    finally:
        model.train(was_training)
    f = np.concatenate(out_f)[:max_tokens] if family in ("tagging", "qa") else np.concatenate(out_f)
    y = np.concatenate(out_y)[: len(f)] if out_y else None
    return f, y


# -- the estimators over candidates ------------------------------------------------------------------


def _registry_of(entry, tasks):
    """``tasks`` plus the tasks the entry declared when it was trained (they travel with it)."""
    declared = {k: v for k, v in (entry.manifest.task_declarations or {}).items() if k not in tasks}
    return tasks.declare(declared, f"store entry {entry.name}") if declared else tasks


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def select(
    target: str,
    candidates: list[str],
    store: str | None = None,
    data=None,
    tasks=None,
    parallel: str | None = None,
    parallel_data=None,
    max_examples: int = 500,
    max_tokens: int = 20000,
    seed: int = 0,
    echo=None,
) -> Selection:
    """Estimate, without training, how much each candidate intermediate adapter (store entries of one
    backbone) helps ``target``: LogME and TextEmb on the target's English training data (at most
    ``max_examples`` rows), and, with ``parallel`` (a retrieval task of parallel sentences), how
    well each candidate aligns the target's languages with English. See the module docstring."""
    import time

    from .config import DataConfig, RunConfig, default_store
    from .errors import ConfigError
    from .modeling import load_backbone, load_stored, model_identity
    from .pipeline import retrieve
    from .store import AdapterStore
    from .tasks import BUILTIN

    echo = echo or (lambda *_: None)
    tasks = tasks or BUILTIN
    if not candidates:
        raise ConfigError("select: name at least one candidate (store entries of trained intermediate adapters)")
    if len(set(candidates)) != len(candidates):
        raise ConfigError(f"select: candidates {candidates} name an entry twice")
    store_root = store or default_store()
    entries = {name: AdapterStore(store_root).verify(name) for name in candidates}
    backbones = {name: model_identity(e.base_model) for name, e in entries.items()}
    if len(set(backbones.values())) > 1:
        listing = ", ".join(f"{n} ({entries[n].base_model})" for n in candidates)
        raise ConfigError(
            f"select: the candidates were trained on different backbones ({listing}): their features are not "
            "comparable; give candidates of one backbone"
        )
    unconfigured = [name for name, e in entries.items() if not e.manifest.config]
    if unconfigured:
        raise ConfigError(f"select: store entries {unconfigured} have no run config in their manifest: TextEmb needs "
                          "their training data; retrain them with adapterxl, or leave them out")  # fmt: skip
    target_task = tasks.get(target)
    if target_task.kind == "retrieval":
        raise ConfigError(f"select: {target!r} is a retrieval task; give a trained target task (xnli, panx, ...)")
    data = data or DataConfig()
    target_task_l, target_data, train = _english_train(target_task, data, seed, max_examples)
    if train is None or len(train) == 0:
        raise ConfigError(
            f"select: target {target!r} has no English training examples here: give its data "
            "(data_files, or a declared task whose train file has rows)"
        )
    base_model = next(iter(entries.values())).base_model
    seconds: dict[str, float] = {}
    scores: dict[str, dict[str, float]] = {"logme": {}, "textemb": {}}
    details: dict[str, Any] = {"target_examples": len(train), "base_model": base_model}

    def timed(estimator: str, start: float) -> None:
        seconds[estimator] = seconds.get(estimator, 0.0) + time.perf_counter() - start

    # TextEmb: the plain backbone's mean-pooled inputs, target against each candidate's training data
    start = time.perf_counter()
    model, tokenizer = load_backbone(base_model)
    plain, _ = features(model, tokenizer, target_task_l, target_data, train, max_tokens=max_tokens)
    target_mean = plain.mean(0)
    for name, entry in entries.items():
        registry = _registry_of(entry, tasks)
        config = RunConfig.from_dict(entry.manifest.config, f"store entry {name}", registry)
        means = []
        for task_name in config.tasks:
            task, task_data, rows = _english_train(config.registry.get(task_name), config.data_for(task_name), seed,
                                                   max_examples)  # fmt: skip
            f, _ = features(model, tokenizer, task, task_data, rows, max_tokens=max_tokens)
            means.append(f.mean(0))
        scores["textemb"][name] = _cosine(np.mean(means, 0), target_mean)
    timed("textemb", start)
    echo(f"TextEmb: {len(candidates)} candidates in {seconds['textemb']:.1f} s")

    # LogME: the target's training data with each candidate's adapter active
    start = time.perf_counter()
    for name, entry in entries.items():
        model, tokenizer = load_backbone(base_model)
        load_stored(model, entry)
        model.active_head = None  # the adapter's hidden states, not its head's output (an MC head reshapes)
        f, y = features(model, tokenizer, target_task_l, target_data, train, max_tokens=max_tokens)
        if y is None:
            raise ConfigError(f"select: target {target!r} ({target_task.family.name}) has no labels LogME can use")
        scores["logme"][name] = logme(f, y)
        details.setdefault("logme_rows", len(f))
    timed("logme", start)
    echo(f"LogME: {len(candidates)} candidates in {seconds['logme']:.1f} s")

    per_language: dict[str, dict[str, dict[str, float]]] = {}
    if parallel is not None:
        start = time.perf_counter()
        pool = tasks.get(parallel)
        if pool.kind != "retrieval":
            raise ConfigError(f"select: --parallel {parallel!r} is not a retrieval task (parallel sentences)")
        languages = [lang for lang in target_task.languages if lang != "en" and lang in pool.languages]
        if not languages:
            raise ConfigError(
                f"select: the parallel task {parallel!r} has none of the target's languages "
                f"{[lang for lang in target_task.languages if lang != 'en']}"
            )
        import dataclasses

        split = pool.family.default_split
        if len(pool.data_files) == 1:  # a declared task with one split of local files: that one
            split = next(iter(pool.data_files))
        pdata = dataclasses.replace(parallel_data or DataConfig(eval_split=split), languages=languages)
        scores["alignment"] = {}
        for name in candidates:
            out = retrieve(parallel, adapter=name, store=store_root, data=pdata, tasks=tasks)
            by_lang = {lang: float(next(iter(m.values()))) for lang, m in out["metrics"].items()}
            per_language.setdefault("alignment", {})[name] = by_lang
            scores["alignment"][name] = float(np.mean(list(by_lang.values())))
        details["alignment_languages"] = languages
        timed("alignment", start)
        echo(f"Alignment: {len(candidates)} candidates x {len(languages)} languages in {seconds['alignment']:.1f} s")
    return Selection(target, list(candidates), scores, per_language, {k: round(v, 2) for k, v in seconds.items()},
                     details)  # fmt: skip


# -- estimates against measured gains ----------------------------------------------------------------


def compare(
    estimates: dict, gains: dict[str, float], language_gains: dict[str, dict[str, float]] | None = None
) -> dict[str, dict]:
    """Each estimator of ``estimates`` (a :meth:`Selection.to_dict`) against the measured ``gains``
    ({candidate: zero-shot points over the baseline}): Spearman rho (and p) over the candidates
    with a gain, regret@1 and regret@3; with ``language_gains`` ({language: {candidate: gain}}),
    rho per language (alignment scores per language where it has them, else its one score)."""
    from scipy.stats import spearmanr

    out: dict[str, dict] = {}
    names = [c for c in estimates["candidates"] if c in gains]
    if len(names) < 2:
        raise ValueError(f"compare: {len(names)} candidate(s) have a measured gain; at least 2 are needed")
    rankings = estimates.get("rankings") or {}
    for estimator in [*estimates["scores"], "combined"]:
        ranking = rankings.get(estimator) or sorted(names, key=lambda c: -estimates["scores"][estimator][c])
        row: dict[str, Any] = {"top": [c for c in ranking if c in gains][:3]}
        # the combined ranking has no score of its own: its order is the score
        scores = {c: -ranking.index(c) for c in names} if estimator == "combined" else estimates["scores"][estimator]
        rho, p = spearmanr([scores[c] for c in names], [gains[c] for c in names])
        row["rho"], row["p"] = (None, None) if np.isnan(rho) else (float(rho), float(p))
        row["regret@1"] = regret(ranking, gains, 1)
        row["regret@3"] = regret(ranking, gains, 3)
        if language_gains and estimator != "combined":
            per_lang = estimates.get("per_language", {}).get(estimator)
            rhos = {}
            for lang, by_candidate in language_gains.items():
                both = [c for c in names if c in by_candidate]
                if len(both) < 3:
                    continue
                values = [per_lang[c][lang] if per_lang and lang in per_lang.get(c, {}) else scores[c] for c in both]
                r, _ = spearmanr(values, [by_candidate[c] for c in both])
                if not np.isnan(r):
                    rhos[lang] = float(r)
            row["rho_languages"] = rhos
        out[estimator] = row
    return out
