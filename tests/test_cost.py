"""The cost model: FLOP counts against hand-computed values, and run times from throughput."""

import pytest

from adapterxl.cost import (
    EVAL_SPEEDUP,
    XLMR_BASE,
    XLMR_LARGE,
    EncoderShape,
    Throughput,
    flops_per_token,
    makespan,
    projected_throughput,
    run_seconds,
)


def test_flops_per_token_hand_computed():
    shape = EncoderShape(layers=2, hidden=4, ffn=8)
    n = 2 * (4 * 16 + 2 * 32)  # q, k, v, o (4 x 4 x 4) + two FFN matrices (4 x 8) per layer = 256
    assert shape.matmul_weights == n == 256
    attention = 2 * 2 * 10 * 4  # 2 L s h at s = 10: 160
    assert flops_per_token(shape, "full", 10) == 6 * n + 6 * attention
    assert flops_per_token(shape, "adapter", 10, trainable=7) == 4 * n + 4 * attention + 6 * 7
    assert flops_per_token(shape, "evaluation", 10) == 2 * n + 2 * attention == 832
    with pytest.raises(ValueError, match="unknown phase"):
        flops_per_token(shape, "inference", 10)


def test_xlmr_large_is_about_300m_matrix_weights():
    # 24 x (4 x 1024^2 + 2 x 1024 x 4096) = 302M of XLM-R large's 560M (the rest: 250k x 1024 embeddings)
    assert XLMR_LARGE.matmul_weights == 301_989_888
    # full fine-tuning at 256 tokens: 6N + 12 L s h = 1.91 GFLOP per token
    assert flops_per_token(XLMR_LARGE, "full", 256) == pytest.approx(1.8119e9 + 7.55e7, rel=1e-3)


@pytest.mark.parametrize("shape", [XLMR_BASE, XLMR_LARGE, EncoderShape(6, 512, 2048)])
@pytest.mark.parametrize("seq", [64, 384])
def test_eval_speedup_is_the_flop_ratio(shape, seq):
    for kind in ("adapter", "full"):
        ratio = flops_per_token(shape, kind, seq) / flops_per_token(shape, "evaluation", seq)
        assert EVAL_SPEEDUP[kind] == pytest.approx(ratio)


def test_run_seconds():
    rates = Throughput({"adapter": 1000.0, "full": 600.0})
    assert run_seconds(10_000, 4_000, "adapter", rates) == pytest.approx(10 + 4_000 / 2_000)
    assert run_seconds(6_000, 3_600, "full", rates) == pytest.approx(10 + 3_600 / 1_800)
    measured = Throughput({"adapter": 1000.0}, evaluation=4000.0)
    assert run_seconds(10_000, 4_000, "adapter", measured) == pytest.approx(11)
    assert run_seconds(10_000, 4_000, "full", measured) is None  # no full-mode throughput known
    with pytest.raises(ValueError, match="unknown kind"):
        run_seconds(1, 1, "stack", rates)


def test_projected_throughput_keeps_the_flop_ratios():
    rates = projected_throughput(XLMR_LARGE, 128, peak_flops=1e15, mfu=0.4)
    per_token = flops_per_token(XLMR_LARGE, "full", 128)
    assert rates.train["full"] == pytest.approx(0.4e15 / per_token)
    assert rates.train["adapter"] / rates.train["full"] == pytest.approx(1.5)
    assert rates.evaluation / rates.train["full"] == pytest.approx(3.0)


def test_makespan_of_dependent_jobs_on_n_gpus_hand_computed():
    # Intermediates a (10 s) and b (2 s); t1 needs a, t2 and t3 need b (3 s each).
    seconds = {"a": 10.0, "b": 2.0, "t1": 3.0, "t2": 3.0, "t3": 3.0}
    needs = {"t1": ["a"], "t2": ["b"], "t3": ["b"]}
    one = makespan(seconds, needs, 1)
    assert one == {"seconds": 21.0, "critical_path": 13.0, "busy": 1.0}
    # 2 GPUs: a | b, then t2 at 2 and t3 at 5 on b's GPU, t1 after a at 10: 13 s, the critical path
    two = makespan(seconds, needs, 2)
    assert two["seconds"] == 13.0 and two["busy"] == pytest.approx(21 / 26)
    assert makespan(seconds, needs, 8)["seconds"] == 13.0  # more GPUs than jobs: the chain a -> t1
    # Jobs wait for a free GPU in their order: 3 independent 4 s jobs on 2 GPUs take 8 s
    assert makespan({"x": 4.0, "y": 4.0, "z": 4.0}, {}, 2)["seconds"] == 8.0
    assert makespan({"t": 3.0}, {"t": ["done-before"]}, 2)["seconds"] == 3.0  # a need not to do is done
    with pytest.raises(ValueError, match="at least 1"):
        makespan(seconds, needs, 0)
