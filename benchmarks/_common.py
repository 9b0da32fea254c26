"""What the training, evaluation and cost benchmarks share: model shapes, models built the way
adapterxl builds them (``adapterxl.modeling.setup_mode`` / ``start_fusion``), the training step the
Trainer runs, FLOP counts, timing and a description of the machine."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

XLMR_VOCAB = 250_002


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int = XLMR_VOCAB
    pretrained: str | None = None  # a model name adapterxl resolves; its real weights are loaded

    @property
    def encoder(self):
        from adapterxl.cost import EncoderShape

        return EncoderShape(self.layers, self.hidden, self.ffn)


SHAPES = {
    "tiny": Shape(2, 64, 2, 128, vocab=1000),  # smoke runs of the scripts themselves
    "mid": Shape(6, 512, 8, 2048),  # the CPU model: 6 layers x 512 hidden, XLM-R's vocabulary
    "base": Shape(12, 768, 12, 3072),  # XLM-R base
    "large": Shape(24, 1024, 16, 4096),  # XLM-R large (the paper's model)
    # The real pretrained encoder (offline: the 4-bit copy converted from PyPI packages), 250,037 rows
    "e5": Shape(12, 384, 12, 1536, vocab=250_037, pretrained="multilingual-e5-small"),
}

MODES = ("adapter", "stack", "fuse", "full")


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def machine() -> str:
    """One line naming the hardware and software the figures come from."""
    if torch.cuda.is_available():
        hw = f"{torch.cuda.get_device_name()} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
    else:
        cpu = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        hw = f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    import adapters
    import transformers

    return f"{hw}; torch {torch.__version__}, transformers {transformers.__version__}, adapters {adapters.__version__}"


def backbone(shape: Shape, attention: str = "sdpa", seed: int = 0):
    """A random-weight XLM-R of ``shape`` (or, for a ``pretrained`` shape, its real weights) in the
    ``adapters`` flexible-head class adapterxl uses."""
    from adapters import AutoAdapterModel
    from transformers import XLMRobertaConfig

    if shape.pretrained:
        from adapterxl.backbones import resolve_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return AutoAdapterModel.from_pretrained(resolve_model(shape.pretrained), attn_implementation=attention)

    config = XLMRobertaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.ffn,
        max_position_embeddings=514,
        attn_implementation=attention,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoAdapterModel.from_config(config)


def intermediates(shape: Shape, n: int, adapter: str, folder: Path):
    """``n`` random intermediate adapters saved as store-entry folders (for ``stack`` / ``fuse``)."""
    from adapterxl.manifest import Manifest
    from adapterxl.modes import parse_adapter_config
    from adapterxl.store import StoreEntry

    scratch = backbone(Shape(shape.layers, shape.hidden, shape.heads, shape.ffn, vocab=8))
    entries = []
    for i in range(n):
        name = f"inter{i}"
        scratch.add_adapter(name, config=parse_adapter_config(adapter))
        scratch.save_adapter(str(folder / name), name, with_head=False, use_safetensors=True)
        manifest = Manifest(name, base_model="benchmark", task="benchmark", kind="adapter", adapter_config=adapter)
        entries.append(StoreEntry(name, folder / name, manifest))
    return entries


def build(shape: Shape, mode: str, adapter: str = "seq_bn", attention: str = "sdpa", fused: int = 3):
    """The model of one training run of ``mode`` on an XNLI-style 3-way classification task, set up
    by adapterxl itself: ``stack`` sits on one intermediate adapter, ``fuse`` is the fusion phase
    over ``fused`` adapters (``fused - 1`` intermediates + the target adapter)."""
    from adapterxl.modeling import setup_mode, start_fusion
    from adapterxl.modes import get_mode
    from adapterxl.tasks import get_task

    model = backbone(shape, attention)
    task = get_task("xnli")
    spec = get_mode(mode)
    n = (fused - 1 if spec.fusion else 1) if spec.intermediates != "none" else 0
    with tempfile.TemporaryDirectory() as tmp:
        entries = intermediates(shape, n, adapter, Path(tmp)) if n else []
        core = setup_mode(model, mode, "target", task, adapter, entries)
    if spec.fusion:
        start_fusion(model, core, "target", "dynamic", joint=False)
    model.train()
    return model.to(device())


def optimizer(model, lr: float = 1e-4, fused: bool | None = True):
    """The Trainer's optimizer (``adamw_torch_fused``), its two parameter groups (no weight decay on
    biases and LayerNorm weights) and its linear schedule with warm-up."""
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, fused=fused)
    return opt, get_linear_schedule_with_warmup(opt, 10, 10_000)


def step(model, opt, schedule, batch, bf16: bool = False, max_grad_norm: float = 1.0) -> torch.Tensor:
    """One training step as the Trainer runs it: forward (bf16 autocast if asked), backward,
    gradient clipping, optimizer and schedule step, gradients set to None."""
    autocast = torch.autocast(device_type=device().type, dtype=torch.bfloat16, enabled=bf16)
    with autocast:
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], max_grad_norm)
    opt.step()
    schedule.step()
    opt.zero_grad(set_to_none=True)
    return loss.detach()


def random_batch(shape: Shape, batch_size: int, seq: int, seed: int = 0) -> dict:
    """A full batch of ``seq`` real tokens per row (no padding), random ids and 3-way labels."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, shape.vocab, (batch_size, seq), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2  # <s> ... </s>
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": torch.randint(0, 3, (batch_size,), generator=g),
    }
    return {k: v.to(device()) for k, v in batch.items()}


def state_bytes(model, opt) -> dict[str, int]:
    """Bytes held by weights, gradient buffers (one per trainable weight, alive from backward to the
    optimizer step) and optimizer state (measured from the tensors)."""
    grads = sum(p.nbytes for p in model.parameters() if p.requires_grad)
    state = sum(t.nbytes for s in opt.state.values() for t in s.values() if torch.is_tensor(t))
    weights = sum(p.nbytes for p in model.parameters())
    return {"weights": weights, "grads": grads, "optimizer": state}


def peak_flops(dtype: torch.dtype) -> float:
    """Measured matmul peak of this device in ``dtype`` (FLOP/s): a 4096 x 4096 x 4096 product on a
    GPU, 2048 x 2048 x 2048 on a CPU, best of several."""
    n = 4096 if torch.cuda.is_available() else 2048
    a = torch.randn(n, n, device=device()).to(dtype)
    b = torch.randn(n, n, device=device()).to(dtype)
    best = float("inf")
    for _ in range(5 if torch.cuda.is_available() else 3):
        sync()
        start = time.perf_counter()
        for _ in range(10 if torch.cuda.is_available() else 1):
            a @ b
        sync()
        best = min(best, (time.perf_counter() - start) / (10 if torch.cuda.is_available() else 1))
    return 2 * n**3 / best


def mnli_like_lengths(n: int, seed: int = 0, max_length: int = 128) -> list[int]:
    """Token counts of ``n`` MNLI-like premise/hypothesis pairs as XLM-R encodes them: premise and
    hypothesis word counts log-normal around MNLI's means (22 and 11 words, long right tail),
    1.3 sentencepiece tokens per word, 4 special tokens, truncated at ``max_length``. A model of
    the distribution, not MNLI itself (the Hub is unreachable here); ``--lengths FILE`` in the
    scripts takes real lengths instead."""
    import numpy as np

    rng = np.random.default_rng(seed)
    premise = rng.lognormal(np.log(22) - 0.5**2 / 2, 0.5, n)
    hypothesis = rng.lognormal(np.log(11) - 0.4**2 / 2, 0.4, n)
    tokens = np.ceil(1.3 * np.maximum(premise, 1)) + np.ceil(1.3 * np.maximum(hypothesis, 1)) + 4
    return np.minimum(tokens, max_length).astype(int).tolist()


def read_lengths(path: str | None, n: int, seed: int = 0, max_length: int = 128) -> list[int]:
    """Lengths from a JSON list (e.g. ``[len(ids) for ids in encoded["input_ids"]]`` of a real
    dataset), else the MNLI-like model."""
    if path:
        import json

        lengths = [min(int(x), max_length) for x in json.loads(Path(path).read_text())]
        if not lengths:
            raise SystemExit(f"{path}: no lengths in the file")
        return lengths
    return mnli_like_lengths(n, seed, max_length)
