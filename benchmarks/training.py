"""Training throughput, memory and model FLOP utilisation: adapter modes against full fine-tuning,
adapterxl's Trainer path against a hand-written loop, and the speed levers.

Every model is a random-weight XLM-R of the chosen shape (XLM-R's 250,002-token vocabulary), set
up by adapterxl itself (``setup_mode`` / ``start_fusion``) for an XNLI-style classification task.
Configurations run interleaved, round after round, so ratios come from the same moments of a
noisy machine: each ratio printed is the median of its per-round ratios.

    python benchmarks/training.py modes                  # figure 1: adapter / stack / fuse / full
    python benchmarks/training.py overhead               # figure 2: Trainer path vs hand-written loop
    python benchmarks/training.py levers                 # bf16, eager attention, AdamW, compile, ...
    python benchmarks/training.py mfu --shape large --bf16 --seq 128 256 384   # figure 5 (GPU)

Columns: tokens/s and examples/s (batch x sequence of real tokens), ``x full`` (throughput over the
full fine-tuning row of the same round), MFU (model FLOPs / measured matmul peak of this device in
the dtype used; on a GPU also against the spec peak given by ``--peak-tflops``), trainable
parameters, gradient + optimizer-state MiB and activation MiB (tensors saved for backward),
measured from the tensors; on a GPU also the peak allocated memory of the step.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import _common as C  # noqa: E402

from adapterxl.cost import flops_per_token  # noqa: E402
from adapterxl.modeling import count_parameters  # noqa: E402
from adapterxl.modes import get_mode  # noqa: E402

GPU_SPEC_TFLOPS = 989.0  # H100 / H200 SXM dense bf16


@dataclass
class Setup:
    """One configuration to time: a mode plus levers."""

    name: str
    mode: str
    seq: int
    bf16: bool = False
    attention: str = "sdpa"
    fused_adamw: bool | None = True
    compile: bool = False
    checkpointing: bool = False
    adapter: str = "seq_bn"
    ref: str | None = None  # the setup this one's speed-up is measured against
    times: list[float] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def prepare(setup: Setup, shape: C.Shape, batch_size: int) -> dict:
    torch.manual_seed(0)
    model = C.build(shape, setup.mode, setup.adapter, setup.attention)
    if setup.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    opt, schedule = C.optimizer(model, fused=setup.fused_adamw)
    runner = torch.compile(model) if setup.compile else model
    batch = C.random_batch(shape, batch_size, setup.seq)
    start = time.perf_counter()
    C.step(runner, opt, schedule, batch, setup.bf16)  # warm-up: optimizer state, kernels, compilation
    C.sync()
    setup.info["warmup_s"] = time.perf_counter() - start
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    matmul = sum(p.numel() for n, p in trainable if p.dim() == 2 and "embeddings" not in n)
    setup.info.update(
        trainable=count_parameters(model)["trainable"],
        flops_per_token=flops_per_token(shape.encoder, get_mode(setup.mode).kind, setup.seq, matmul),
        **{f"{k}_bytes": v for k, v in C.state_bytes(model, opt).items()},
        embedding_grad=model.get_input_embeddings().weight.requires_grad,
    )
    setup.info["activation_bytes"] = saved_bytes(runner, batch, setup.bf16)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        C.step(runner, opt, schedule, batch, setup.bf16)
        torch.cuda.synchronize()
        setup.info["step_peak_bytes"] = torch.cuda.max_memory_allocated() - before
    return {"model": model, "runner": runner, "opt": opt, "schedule": schedule, "batch": batch}


def saved_bytes(model, batch, bf16: bool) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward pass of one forward."""
    storages: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    autocast = torch.autocast(device_type=C.device().type, dtype=torch.bfloat16, enabled=bf16)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        loss = model(**batch).loss
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    del loss
    return sum(n for ptr, n in storages.items() if ptr not in params)


def run(
    setups: list[Setup],
    shape: C.Shape,
    batch_size: int,
    rounds: int,
    steps: int,
    peak_tflops: float = GPU_SPEC_TFLOPS,
    json_path: str | None = None,
) -> None:
    print(f"# {C.machine()}", flush=True)
    print(f"# shape {shape}, batch {batch_size}, {rounds} rounds x {steps} steps, interleaved", flush=True)
    states = {}
    for setup in setups:
        print(f"  building {setup.name} ...", file=sys.stderr, flush=True)
        states[setup.name] = prepare(setup, shape, batch_size)
    for r in range(rounds):
        for setup in setups:
            s = states[setup.name]
            C.sync()
            start = time.perf_counter()
            for _ in range(steps):
                C.step(s["runner"], s["opt"], s["schedule"], s["batch"], setup.bf16)
            C.sync()
            setup.times.append((time.perf_counter() - start) / steps)
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    peaks = {
        torch.float32: C.peak_flops(torch.float32),
        torch.bfloat16: C.peak_flops(torch.bfloat16),
    }
    print(
        f"# measured matmul peak: float32 {peaks[torch.float32] / 1e12:.2f} TFLOP/s, "
        f"bfloat16 {peaks[torch.bfloat16] / 1e12:.2f} TFLOP/s"
    )
    by_name = {s.name: s for s in setups}
    gpu = torch.cuda.is_available()
    header = "| setup | seq | tokens/s | examples/s | speed-up | MFU (measured peak) |"
    header += " MFU (spec) |" if gpu else ""
    header += " trainable | grads+optimizer MiB | activations MiB |" + (" step peak MiB |" if gpu else "")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    results = []
    for setup in setups:
        tokens = batch_size * setup.seq
        per_step = statistics.median(setup.times)
        base = by_name.get(setup.ref)
        ratio = statistics.median(b / t for t, b in zip(setup.times, base.times, strict=True)) if base else None
        flops = setup.info["flops_per_token"] * tokens / per_step
        peak = peaks[torch.bfloat16 if setup.bf16 else torch.float32]
        row = {
            "setup": setup.name,
            "seq": setup.seq,
            "tokens_per_s": tokens / per_step,
            "examples_per_s": batch_size / per_step,
            "ratio": ratio,
            "mfu_measured": flops / peak,
            "mfu_spec": flops / (peak_tflops * 1e12) if gpu else None,
            **setup.info,
        }
        results.append(row)
        mib = 2**20
        cells = [
            setup.name,
            setup.seq,
            f"{row['tokens_per_s']:,.0f}",
            f"{row['examples_per_s']:,.1f}",
            f"{ratio:.2f} x {base.name}" if ratio else "",
            f"{row['mfu_measured']:.1%}",
        ]
        if gpu:
            cells.append(f"{row['mfu_spec']:.1%}")
        cells += [
            f"{setup.info['trainable']:,}",
            f"{(setup.info['grads_bytes'] + setup.info['optimizer_bytes']) / mib:,.0f}",
            f"{setup.info['activation_bytes'] / mib:,.0f}",
        ]
        if gpu:
            cells.append(f"{setup.info['step_peak_bytes'] / mib:,.0f}")
        print("| " + " | ".join(str(c) for c in cells) + " |")
    for setup in setups:
        if setup.compile:
            print(f"# {setup.name}: first step (compilation) {setup.info['warmup_s']:.1f} s")
    if json_path:
        Path(json_path).write_text(json.dumps({"machine": C.machine(), "rows": results}, indent=2))
    del states
    gc.collect()


# -- figure 2: adapterxl's training path against a hand-written loop ----------------------------------


def overhead(shape: C.Shape, batch_size: int, n_steps: int, rounds: int, lengths_file: str | None) -> None:
    """The same model (same initial weights), adapter, batches (the same length-grouped order) and
    optimizer: ``adapterxl.training.train`` (AdapterTrainer, dev selection, logging) against a loop
    of forward / backward / clip / AdamW / schedule."""
    import datasets
    import numpy as np
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup, set_seed

    from adapterxl.config import TrainingConfig
    from adapterxl.fixtures import build_tiny_backbone
    from adapterxl.tasks.common import PaddingCollator
    from adapterxl.training import SeededLengthGroupedSampler, train

    datasets.disable_progress_bars()
    n = n_steps * batch_size
    lengths = C.read_lengths(lengths_file, n, seed=1)[:n]
    rng = np.random.default_rng(0)
    ids = [[0, *rng.integers(5, shape.vocab, size=max(length - 2, 0)).tolist(), 2] for length in lengths]
    ds = datasets.Dataset.from_dict(
        {
            "input_ids": ids,
            "attention_mask": [[1] * len(x) for x in ids],
            "labels": rng.integers(0, 3, n).tolist(),
            "length": [len(x) for x in ids],
        }
    )
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_backbone("tiny-xlmr"))  # only pads (pad id 1)
    collator = PaddingCollator(tokenizer, ("labels",))
    cfg = TrainingConfig(
        learning_rate=1e-4, epochs=1, batch_size=batch_size, warmup_ratio=0.1, logging_steps=50, bf16=False
    )
    seed = 7
    print(f"# {C.machine()}")
    print(f"# shape {shape}, adapter mode, {n_steps} steps of {batch_size}, {sum(lengths):,} real tokens per run")

    def fresh():
        torch.manual_seed(0)
        return C.build(shape, "adapter")

    def with_trainer(tmp: str):
        model = fresh()
        start = time.perf_counter()
        result = train(model, ds, collator, cfg, "adapter", tmp, seed, lambda m: {"accuracy": 0.0}, "accuracy")
        seconds = time.perf_counter() - start
        assert result.steps == n_steps, result.steps
        return seconds, model

    def by_hand():
        model = fresh()
        start = time.perf_counter()
        set_seed(seed)
        opt, _ = C.optimizer(model, lr=1e-4)
        schedule = get_linear_schedule_with_warmup(opt, int(np.ceil(0.1 * n_steps)), n_steps)
        sampler = SeededLengthGroupedSampler(ds["length"], batch_size, seed)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=collator)
        model.train()
        for batch in loader:
            C.step(model, opt, schedule, {k: v.to(C.device()) for k, v in batch.items()})
        C.sync()
        return time.perf_counter() - start, model

    ratios, trainer_times, hand_times = [], [], []
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            t_trainer, m_trainer = with_trainer(tmp)
        t_hand, m_hand = by_hand()
        ratios.append(t_hand / t_trainer)
        trainer_times.append(t_trainer)
        hand_times.append(t_hand)
        print(f"  round {r + 1}/{rounds}: Trainer path {t_trainer:.1f} s, hand loop {t_hand:.1f} s", file=sys.stderr)
    trained = [n for n, p in m_hand.named_parameters() if p.requires_grad]
    a, b = dict(m_trainer.named_parameters()), dict(m_hand.named_parameters())
    diff = max((a[k] - b[k]).abs().max().item() for k in trained)
    tokens = sum(lengths)
    print("| loop | seconds (median) | real tokens/s | relative throughput |")
    print("|---|---:|---:|---:|")
    print(
        f"| hand-written | {statistics.median(hand_times):.2f} | {tokens / statistics.median(hand_times):,.0f} | 1.00 |"
    )
    print(
        f"| adapterxl.training.train | {statistics.median(trainer_times):.2f} | "
        f"{tokens / statistics.median(trainer_times):,.0f} | {statistics.median(ratios):.3f} |"
    )
    print(f"# per-round relative throughput: {', '.join(f'{x:.3f}' for x in ratios)}")
    print(f"# largest difference of a trained weight after the two runs: {diff:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=["modes", "overhead", "levers", "mfu"])
    parser.add_argument("--shape", choices=sorted(C.SHAPES), default="mid")
    parser.add_argument("--vocab", type=int, help="vocabulary size (default: the shape's; XLM-R 250,002)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seq", type=int, nargs="+", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setup and round")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (modes / mfu)")
    parser.add_argument("--fused", type=int, default=3, help="adapters in the fusion (mode fuse)")
    parser.add_argument("--lengths", help="overhead: JSON list of real sequence lengths (default: MNLI-like)")
    parser.add_argument("--peak-tflops", type=float, default=GPU_SPEC_TFLOPS, help="GPU spec peak for MFU")
    parser.add_argument("--compile", action="store_true", help="add torch.compile setups")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    shape = C.SHAPES[args.shape]
    if args.vocab:
        shape = dataclasses.replace(shape, vocab=args.vocab)
    gpu = torch.cuda.is_available()
    if args.figure == "overhead":
        overhead(shape, args.batch_size or 16, args.steps if args.steps != 3 else 60, args.rounds, args.lengths)
        return
    batch = args.batch_size or (32 if gpu else 16)
    seqs = args.seq or ([128, 256, 384] if args.figure == "mfu" else [128])
    if args.figure in ("modes", "mfu"):
        modes = C.MODES if args.figure == "modes" else ("adapter", "full")
        setups = [Setup(f"{m}@{s}", m, s, bf16=args.bf16, ref=f"full@{s}") for s in seqs for m in modes]
        if args.compile:
            setups += [
                Setup(f"{m} compile@{s}", m, s, bf16=args.bf16, compile=True, ref=f"{m}@{s}")
                for s in seqs
                for m in ("adapter", "full")
            ]
    else:
        s = seqs[0]
        low = list(range(shape.layers // 2))
        setups = [Setup(f"full@{s}", "full", s), Setup(f"adapter@{s}", "adapter", s, ref=f"full@{s}")]
        for m in ("adapter", "full"):
            base = f"{m}@{s}"
            setups += [
                Setup(f"{m} bf16@{s}", m, s, bf16=True, ref=base),
                Setup(f"{m} eager attention@{s}", m, s, attention="eager", ref=base),
                Setup(f"{m} foreach AdamW@{s}", m, s, fused_adamw=False, ref=base),
                Setup(f"{m} checkpointing@{s}", m, s, checkpointing=True, ref=base),
            ]
            if args.compile:
                setups.append(Setup(f"{m} compile@{s}", m, s, compile=True, ref=base))
        setups.append(
            Setup(
                f"adapter AdapterDrop {low[0]}-{low[-1]}@{s}",
                "adapter",
                s,
                adapter=f"seq_bn[leave_out={low}]",
                ref=f"adapter@{s}",
            )
        )
    run(setups, shape, batch, args.rounds, args.steps, args.peak_tflops, args.json)


if __name__ == "__main__":
    main()
