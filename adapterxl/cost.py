"""The cost model behind ``adapterxl plan``: model FLOPs per token, and the seconds a run takes from
its token counts and a measured throughput.

Per trained token of an encoder with ``N`` matrix-product weights, ``L`` layers, hidden size
``h`` and sequence length ``s``:

- full fine-tuning: forward ``2N``, input gradients ``2N``, weight gradients ``2N`` = ``6N``, plus
  ``12 L s h`` for the attention scores and values;
- adapter modes (frozen backbone): the frozen weights need no weight gradients: ``4N + 8 L s h``,
  plus ``6`` per trainable adapter / head weight;
- evaluation: the forward pass, ``2N + 4 L s h``.

So a throughput measured for one kind carries to the others through these ratios: evaluation runs
about 3x faster than full fine-tuning and 2x faster than adapter training per token (less, where a
measured evaluation throughput says so).
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("adapter", "full")


@dataclass(frozen=True)
class EncoderShape:
    layers: int
    hidden: int
    ffn: int

    @property
    def matmul_weights(self) -> int:
        """Weights of the encoder's matrix products: q, k, v, o and the two feed-forward layers."""
        return self.layers * (4 * self.hidden * self.hidden + 2 * self.hidden * self.ffn)


XLMR_LARGE = EncoderShape(24, 1024, 4096)
XLMR_BASE = EncoderShape(12, 768, 3072)


def flops_per_token(shape: EncoderShape, phase: str, seq: int, trainable: int = 0) -> float:
    """Model FLOPs per token of ``phase`` (``full``, ``adapter`` or ``evaluation``) at sequence
    length ``seq``; ``trainable``: the matrix weights that train in adapter modes."""
    n = shape.matmul_weights
    attention = 2 * shape.layers * seq * shape.hidden  # QK^T and AV of one token, forward
    if phase not in PASSES:
        raise ValueError(f"unknown phase {phase!r}: use {', '.join(PASSES)}")
    passes, trained = PASSES[phase]
    return passes * (n + attention) + trained * trainable


# Passes over the frozen weights per token (forward 1, backward through activations 1, weight
# gradients 1) and over the trained ones, by phase: full fine-tuning trains every weight.
PASSES = {"full": (6, 0), "adapter": (4, 6), "evaluation": (2, 0)}


# How much faster evaluation runs per token than training of each kind: the FLOP ratios above
# (6N / 2N and 4N / 2N, attention included), whatever the shape.
EVAL_SPEEDUP = {"adapter": 2.0, "full": 3.0}


@dataclass(frozen=True)
class Throughput:
    """Real (unpadded) tokens per second: training per kind, and optionally evaluation."""

    train: dict[str, float]
    evaluation: float | None = None
    overhead: dict[str, float] | None = None  # seconds per run besides its tokens: model and data loading, saving

    def eval_rate(self, kind: str) -> float | None:
        if self.evaluation:
            return self.evaluation
        rate = self.train.get(kind)
        return rate * EVAL_SPEEDUP[kind] if rate else None


def run_seconds(train_tokens: float, eval_tokens: float, kind: str, throughput: Throughput) -> float | None:
    """Seconds of one run of ``kind`` (``adapter`` for every adapter mode, or ``full``): training
    tokens (all epochs) at the training throughput plus evaluation tokens at the evaluation
    throughput; None when the kind has no throughput."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: use adapter or full")
    rate = throughput.train.get(kind)
    if not rate:
        return None
    return (throughput.overhead or {}).get(kind, 0.0) + train_tokens / rate + eval_tokens / throughput.eval_rate(kind)


def dev_evaluations(config) -> float:
    """How often a run scores its English dev set: every ``eval_steps`` steps, else every epoch,
    plus a fusion phase's own."""
    from .modes import get_mode

    training = config.training
    epochs = run_epochs(config)
    if training.eval_steps:
        if training.max_steps > 0:
            return training.max_steps / training.eval_steps
        return epochs  # steps per epoch unknown here: about one per epoch at the least
    phases = 2 if get_mode(config.mode).fusion else 1
    return max(epochs, phases)


def projected_throughput(shape: EncoderShape, seq: int, peak_flops: float, mfu: float) -> Throughput:
    """Throughput a device of ``peak_flops`` would reach at model FLOP utilisation ``mfu``: a
    projection for planning before anything was measured, never a measurement."""
    return Throughput(
        {kind: mfu * peak_flops / flops_per_token(shape, kind, seq) for kind in KINDS},
        mfu * peak_flops / flops_per_token(shape, "evaluation", seq),
    )


# task: (training examples, XLM-R tokens per training example, evaluation examples over all
# languages and evaluated splits, tokens per evaluation example). Examples: dataset cards / the
# reference task table. Tokens per example: ESTIMATES (mean words x ~1.3 pieces + specials; QA at
# one 384-token window per question; multiple choice: every choice's sequence).
TOKENS = {
    "anliplus": (1_104_934, 44, 0, 0),  # SNLI ~25, MNLI ~47, ANLI ~100 tokens per pair
    "mnli": (392_702, 47, 0, 0),
    "qqp": (363_846, 30, 0, 0),
    "squad": (87_599, 190, 0, 0),
    "squad_v2": (130_319, 190, 0, 0),
    "hellaswag": (39_905, 4 * 70, 0, 0),
    "ccg": (39_604, 35, 0, 0),
    "cosmosqa": (25_262, 4 * 130, 0, 0),
    "csqa": (9_741, 5 * 20, 0, 0),
    "xnli": (392_702, 47, 15 * (2_490 + 5_010), 55),
    "pawsx": (49_401, 55, 7 * (2_000 + 2_000), 60),
    "udpos": (21_253, 30, 250_000, 35),
    "panx": (20_000, 20, 40 * (10_000 + 10_000), 22),
    "xquad": (87_599, 190, 11 * 1_190, 210),
    "mlqa": (87_599, 190, 7 * 5_500 + 49 * 1_000, 230),
    "tydiqa": (3_696, 300, 9 * 560, 300),
    # retrieval: forward passes only (both sides): Tatoeba 28 languages x 1,000 pairs + the 8 short
    # ones (jv 205, ka 746, kk 575, ml 687, sw 390, ta 307, te 234, th 548) x ~15 tokens,
    # BUCC training corpora ~400k sentences per side for de/fr/ru/zh-en x ~35 tokens
    "tatoeba": (0, 0, 2 * (28 * 1_000 + 3_692), 15),
    "bucc2018": (0, 0, 4 * 2 * 400_000, 35),
}


def estimated_tokens(config) -> dict[str, float] | None:
    """``{"train": tokens of one epoch, "evaluation": tokens}`` of a run from :data:`TOKENS` (the
    published dataset sizes and estimated tokens per example), for planning without the data or a
    tokenizer at hand; None when a task of the run is not in the table (a declared task) or the run
    is cut (``max_train_examples``: the table's size no longer holds)."""
    if any(name not in TOKENS for name in config.tasks):
        return None
    train = evaluation = 0.0
    for name in config.tasks:
        n_train, per_train, n_eval, per_eval = TOKENS[name]
        cut = config.data_for(name).max_train_examples
        train += min(n_train, cut or n_train) * per_train
        evaluation += n_eval * per_eval
    return {"train": train, "evaluation": evaluation}


def run_epochs(config) -> float:
    """Epochs over the training data a run makes, its fusion phase included."""
    from .modes import get_mode

    epochs = config.training.epochs
    if get_mode(config.mode).fusion:
        epochs += config.fusion.epochs or config.training.epochs
    return epochs


def makespan(seconds: dict[str, float], needs: dict[str, list[str]], workers: int) -> dict[str, float]:
    """Wall time of jobs on ``workers`` slots (GPUs), each job starting once the jobs it needs have
    ended, as the Ray executor runs them: jobs are taken in their (dict) order whenever a slot is
    free and their needs are done. ``needs`` outside ``seconds`` count as done. Returns
    ``{"seconds": makespan, "critical_path": the longest chain of needs, "busy": the share of
    slot time spent on jobs}``. The critical path bounds the wall time however many GPUs run it."""
    import heapq

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    order = list(seconds)
    chain: dict[str, float] = {}
    for job in order:  # needs come before the jobs that use them
        chain[job] = seconds[job] + max((chain.get(n, 0.0) for n in needs.get(job, ()) if n in seconds), default=0.0)
    end: dict[str, float] = {}
    free = [0.0] * workers  # when each slot is next free (a heap)
    waiting = list(order)
    now = 0.0
    while waiting:
        ready = [j for j in waiting if all(n in end and end[n] <= now for n in needs.get(j, ()) if n in seconds)]
        if ready and free[0] <= now:
            job = ready[0]
            waiting.remove(job)
            end[job] = now + seconds[job]
            heapq.heapreplace(free, end[job])
            continue
        # advance to the next moment something changes: a job ends (its slot frees)
        later = [t for t in free if t > now]
        if not later:
            raise ValueError(f"jobs {waiting[:3]} need jobs that never run: a cycle or an unknown order")
        now = min(later)
    total = max(end.values(), default=0.0)
    return {
        "seconds": total,
        "critical_path": max(chain.values(), default=0.0),
        "busy": sum(seconds.values()) / (total * workers) if total else 1.0,
    }
