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
    return train_tokens / rate + eval_tokens / throughput.eval_rate(kind)


def projected_throughput(shape: EncoderShape, seq: int, peak_flops: float, mfu: float) -> Throughput:
    """Throughput a device of ``peak_flops`` would reach at model FLOP utilisation ``mfu``: a
    projection for planning before anything was measured, never a measurement."""
    return Throughput(
        {kind: mfu * peak_flops / flops_per_token(shape, kind, seq) for kind in KINDS},
        mfu * peak_flops / flops_per_token(shape, "evaluation", seq),
    )
