"""The adapter store: checksum verification, removal, and the store CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import make_entry, run_config

from adapterxl import RunConfig, run
from adapterxl.cli import main
from adapterxl.errors import StoreError
from adapterxl.store import AdapterStore


def test_verify_detects_changed_missing_and_unlisted_files(tmp_path):
    entry = make_entry(tmp_path, "inter", "tiny-xlmr")
    store = AdapterStore(tmp_path)
    assert store.verify("inter").manifest["files"]["adapter.safetensors"]
    weights = entry.path / "adapter.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one flipped bit
    with pytest.raises(StoreError, match="checksum mismatch for 'adapter.safetensors'"):
        store.verify("inter")
    weights.unlink()
    with pytest.raises(StoreError, match="file 'adapter.safetensors' listed in its manifest is missing"):
        store.verify("inter")
    weights.write_bytes(original)
    (entry.path / "pytorch_adapter.bin").write_bytes(b"pickle")
    with pytest.raises(StoreError, match=r"files \['pytorch_adapter.bin'\] are not in its manifest"):
        store.verify("inter")


def test_a_run_refuses_a_tampered_intermediate_before_training(tmp_path, nli_files):
    entry = make_entry(tmp_path / "store", "inter", "tiny-xlmr")
    (entry.path / "adapter_config.json").write_text(
        json.dumps({**json.loads((entry.path / "adapter_config.json").read_text()), "name": "x"})
    )
    config = run_config(
        tmp_path, task="xnli", mode="stack", intermediate=["inter"], data={"data_files": nli_files["xnli"]}
    )
    with pytest.raises(StoreError, match="checksum mismatch for 'adapter_config.json'"):
        run(RunConfig.from_dict(config))


def test_remove_deletes_the_entry_and_a_crashed_removal_is_finished(tmp_path):
    make_entry(tmp_path, "a", "tiny-xlmr")
    make_entry(tmp_path, "b", "tiny-xlmr")
    store = AdapterStore(tmp_path)
    store.remove("a")
    assert store.names() == ["b"] and not list(tmp_path.glob(".rm-*"))
    (tmp_path / "b").rename(tmp_path / ".rm-b-0000")  # a crash after the rename, before the delete
    assert AdapterStore(tmp_path).names() == [] and not list(tmp_path.glob(".rm-*"))
    with pytest.raises(StoreError, match="not in the store"):
        store.remove("a")


def test_store_show_and_rm_cli(tmp_path):
    make_entry(tmp_path, "inter", "tiny-xlmr")
    cli = CliRunner()
    out = cli.invoke(main, ["store", "list", "--store", str(tmp_path)])
    assert out.exit_code == 0 and out.output.startswith("inter ") and " MB " in out.output and "tiny-xlmr" in out.output
    out = cli.invoke(main, ["store", "show", "inter", "--store", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "base model      tiny-xlmr" in out.output and "sha256 verified" in out.output
    out = cli.invoke(main, ["store", "rm", "inter", "--store", str(tmp_path)], input="n\n")
    assert out.exit_code == 1 and AdapterStore(tmp_path).names() == ["inter"]  # declined: kept
    out = cli.invoke(main, ["store", "rm", "inter", "--store", str(tmp_path), "--yes"])
    assert out.exit_code == 0 and AdapterStore(tmp_path).names() == []
    out = cli.invoke(main, ["store", "show", "inter", "--store", str(tmp_path)])
    assert out.exit_code == 2 and "Error: adapter 'inter' is not in the store" in out.output
