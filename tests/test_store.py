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


SECRET = "hf_TESTTOKENdoNotWrite1234567890"


def test_push_dry_run_writes_exactly_the_upload(tmp_path):
    from adapterxl.store import push

    entry = make_entry(tmp_path / "store", "inter", "tiny-xlmr")
    files = push(AdapterStore(tmp_path / "store"), "inter", "lab/xlmr-mnli", dry_run=tmp_path / "dry")
    on_disk = sorted(p.relative_to(tmp_path / "dry").as_posix() for p in (tmp_path / "dry").rglob("*") if p.is_file())
    assert files == on_disk
    assert {"adapter.safetensors", "adapter_config.json", "manifest.json", "README.md"} <= set(files)
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    assert (tmp_path / "dry" / "adapter.safetensors").read_bytes() == (entry.path / "adapter.safetensors").read_bytes()
    with pytest.raises(StoreError, match="is not empty"):
        push(AdapterStore(tmp_path / "store"), "inter", "lab/xlmr-mnli", dry_run=tmp_path / "dry")
    with pytest.raises(StoreError, match="must be ORG_OR_USER/NAME"):
        push(AdapterStore(tmp_path / "store"), "inter", "no-org", dry_run=tmp_path / "dry2")


def test_push_goes_through_huggingface_hub_and_never_writes_the_token(tmp_path, monkeypatch, capsys):
    """The real HfApi client with its network calls patched: repo creation and upload get the
    entry folder; the token reaches the client only, never a file or the output."""
    import huggingface_hub

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create"] = (repo_id, kwargs, self.token)

    def upload_folder(self, **kwargs):
        calls["upload"] = (kwargs, self.token)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    make_entry(tmp_path / "store", "inter", "tiny-xlmr")
    out = CliRunner().invoke(
        main, ["store", "push", "inter", "--repo", "lab/xlmr-mnli", "--store", str(tmp_path / "store")]
    )
    assert out.exit_code == 0, out.output
    assert calls["create"][0] == "lab/xlmr-mnli" and calls["create"][1]["exist_ok"] is True
    upload, _ = calls["upload"]
    assert upload["repo_id"] == "lab/xlmr-mnli" and upload["folder_path"] == str(tmp_path / "store" / "inter")
    assert "Uploaded to lab/xlmr-mnli" in out.output and "adapter.safetensors" in out.output
    captured = capsys.readouterr()
    assert SECRET not in out.output + captured.out + captured.err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
