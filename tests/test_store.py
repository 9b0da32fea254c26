"""The adapter store: checksum verification, removal, and the store CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_entry, run_config

from adapterxl import RunConfig, run
from adapterxl.cli import main
from adapterxl.errors import StoreError
from adapterxl.manifest import Manifest
from adapterxl.store import AdapterStore


def test_verify_detects_changed_missing_and_unlisted_files(tmp_path):
    entry = make_entry(tmp_path, "inter", "tiny-xlmr")
    store = AdapterStore(tmp_path)
    assert store.verify("inter").manifest.files["adapter.safetensors"]
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
    header, _, row = out.output.splitlines()[:3]
    assert out.exit_code == 0 and header.split() == [
        "name",
        "task",
        "mode",
        "adapter",
        "base",
        "model",
        "MB",
        "setup",
        "score",
    ]
    assert row.split()[:5] == ["inter", "mnli", "adapter", "seq_bn", "tiny-xlmr"]
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
        folder = Path(kwargs["folder_path"])
        calls["upload"] = (kwargs, self.token)
        calls["files"] = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

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
    assert upload["repo_id"] == "lab/xlmr-mnli"
    entry = tmp_path / "store" / "inter"
    assert set(calls["files"]) == {p.relative_to(entry).as_posix() for p in entry.rglob("*") if p.is_file()}
    assert all(calls["files"][f] == (entry / f).read_bytes() for f in calls["files"] if f != "README.md")
    card = calls["files"]["README.md"].decode()
    assert 'model.load_adapter("lab/xlmr-mnli", load_as="inter", set_active=True' in card  # the repo, not a path
    assert "Uploaded to lab/xlmr-mnli" in out.output and "adapter.safetensors" in out.output
    captured = capsys.readouterr()
    assert SECRET not in out.output + captured.out + captured.err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def _serve(monkeypatch, repos: dict, calls: list):
    """Patch huggingface_hub.snapshot_download to 'download' from local folders (no network)."""
    import shutil

    import huggingface_hub

    def snapshot_download(repo_id, revision=None, token=None, local_dir=None, **kwargs):
        calls.append({"repo_id": repo_id, "revision": revision, "token": token})
        shutil.copytree(repos[repo_id], local_dir, dirs_exist_ok=True)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)


def test_pull_round_trip_verifies_and_loads_to_identical_logits(tmp_path, monkeypatch):
    import torch

    from adapterxl.modeling import load_backbone, load_stored
    from adapterxl.store import pull, push

    make_entry(tmp_path / "a", "inter", "tiny-xlmr")
    push(AdapterStore(tmp_path / "a"), "inter", "lab/inter", dry_run=tmp_path / "repo")
    calls = []
    _serve(monkeypatch, {"lab/inter": tmp_path / "repo"}, calls)
    entry = pull(AdapterStore(tmp_path / "b"), "lab/inter", token=SECRET, revision="v1")
    assert calls == [{"repo_id": "lab/inter", "revision": "v1", "token": SECRET}]
    assert entry.name == "inter" and entry.manifest.source == {"repo": "lab/inter", "revision": "v1"}
    AdapterStore(tmp_path / "b").verify("inter")
    logits = []
    for store in ("a", "b"):
        model, tok = load_backbone("tiny-xlmr")
        load_stored(model, AdapterStore(tmp_path / store).get("inter"))
        model.eval()
        logits.append(model(**tok(["the dog"], ["a cat"], return_tensors="pt")).logits)
    assert torch.equal(*logits)
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    # A changed file in the repo is caught and nothing enters the store.
    weights = tmp_path / "repo" / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(StoreError, match=r"does not match its manifest: checksum mismatch .*adapter.safetensors"):
        pull(AdapterStore(tmp_path / "c"), "lab/inter")
    assert AdapterStore(tmp_path / "c").names() == []


def test_pull_refuses_pickled_weights_unless_trusted(tmp_path, monkeypatch):
    """An AdapterHub-style repo: the adapters library's default .bin files, no adapterxl manifest."""
    from adapterxl.modeling import load_backbone, load_stored
    from adapterxl.store import pull

    model, _ = load_backbone("tiny-xlmr")
    model.add_adapter("sst", config="seq_bn")
    model.add_classification_head("sst", num_labels=2)
    model.save_adapter(str(tmp_path / "hubrepo"), "sst")  # pickled pytorch_adapter.bin
    _serve(monkeypatch, {"AdapterHub/tiny-sst": tmp_path / "hubrepo"}, [])
    with pytest.raises(StoreError, match=r"pickled weights \['pytorch_adapter.bin', 'pytorch_model_head.bin'\]"):
        pull(AdapterStore(tmp_path / "store"), "AdapterHub/tiny-sst")
    assert AdapterStore(tmp_path / "store").names() == []
    out = CliRunner().invoke(
        main, ["store", "pull", "AdapterHub/tiny-sst", "--trust-pickle", "--store", str(tmp_path / "store")]
    )
    assert out.exit_code == 0, out.output
    entry = AdapterStore(tmp_path / "store").verify("tiny-sst")
    assert entry.kind == "adapter" and entry.manifest.task == "sst" and entry.manifest.adapter_config == "bottleneck"
    fresh, _ = load_backbone("tiny-xlmr")
    assert load_stored(fresh, entry) == "tiny-sst" and "tiny-sst" in fresh.adapters_config


def test_pull_rejects_repos_that_hold_no_adapter(tmp_path, monkeypatch):
    from adapterxl.store import pull

    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "config.json").write_text("{}")
    _serve(monkeypatch, {"x/model": tmp_path / "repo"}, [])
    with pytest.raises(StoreError, match="holds no adapters files"):
        pull(AdapterStore(tmp_path / "store"), "x/model")
    with pytest.raises(Exception, match="invalid adapter name"):
        pull(AdapterStore(tmp_path / "store"), "x/model", name="../up")


def _card_meta(card: str) -> dict:
    import yaml

    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_model_card_metadata_lists_every_language_metric_and_the_license():
    from adapterxl.store import model_card

    manifest = {
        "name": "panx-stack",
        "task": "panx",
        "kind": "setup",
        "mode": "stack",
        "adapter_config": "seq_bn",
        "base_model": "xlm-roberta-large",
        "license": "cc-by-4.0",
        "seed": 1,
        "setup": ["mnli", "panx-stack"],
        "metrics": {"en": {"f1": 83.25}, "de": {"f1": 77.5}},
        "summary": {"metric": "f1", "avg": 80.375, "avg_zero_shot": 77.5},
    }
    card = model_card(Manifest.from_dict(manifest))
    meta = _card_meta(card)
    assert meta["library_name"] == "adapter-transformers" and meta["base_model"] == "xlm-roberta-large"
    assert meta["license"] == "cc-by-4.0" and meta["language"] == ["de", "en"]
    assert meta["datasets"] == ["google/xtreme"] and "panx" in meta["tags"] and "seq_bn" in meta["tags"]
    (entry,) = meta["model-index"]
    assert entry["name"] == "panx-stack"
    got = {r["dataset"]["config"]: r for r in entry["results"]}
    assert set(got) == {"PAN-X.de", "PAN-X.en"}
    assert got["PAN-X.de"]["task"] == {"type": "token-classification", "name": "panx"}
    assert got["PAN-X.de"]["dataset"]["type"] == "google/xtreme" and got["PAN-X.de"]["dataset"]["split"] == "validation"
    assert got["PAN-X.de"]["metrics"] == [{"type": "f1", "value": 77.5, "name": "f1 (de)"}]
    assert "| de | 77.50 |" in card and "Average over languages: 80.38" in card

    # Multi-task entries: results per task and language; each task's own dataset.
    multi = {
        **manifest,
        "name": "mt",
        "task": "mnli+squad",
        "tasks": ["mnli", "squad"],
        "mode": "adapter",
        "metrics": {"mnli": {"en": {"accuracy": 80.0}}, "squad": {"en": {"f1": 85.0, "exact_match": 75.0}}},
        "summary": {
            "metric": "mean",
            "avg": 82.5,
            "tasks": {"mnli": {"metric": "accuracy", "avg": 80.0}, "squad": {"metric": "f1", "avg": 85.0}},
        },
    }
    (entry,) = _card_meta(model_card(Manifest.from_dict(multi)))["model-index"]
    types = {r["task"]["name"]: (r["task"]["type"], [m["value"] for m in r["metrics"]]) for r in entry["results"]}
    assert types == {"mnli": ("text-classification", [80.0]), "squad": ("question-answering", [85.0, 75.0])}


@pytest.mark.parametrize("license", ["MIT", "", "cc by"])
def test_a_license_that_is_no_hub_id_is_a_config_error(tmp_path, license):
    from adapterxl.errors import ConfigError

    with pytest.raises(ConfigError, match="Hub license id"):
        RunConfig.from_dict(run_config(tmp_path, task="xnli", license=license))


def test_leftovers_of_a_killed_save_are_cleaned_unless_their_writer_lives(tmp_path):
    from adapterxl.locks import Lock

    root = tmp_path / "st"
    (root / ".tmp-gone-1a2b3c4d").mkdir(parents=True)  # a save killed mid-way: nobody holds its lock
    (root / ".tmp-busy-5e6f7a8b").mkdir()
    with Lock(root / ".lock-busy", "store entry 'busy'"):  # a live writer of 'busy'
        AdapterStore(root)
        assert not (root / ".tmp-gone-1a2b3c4d").exists()
        assert (root / ".tmp-busy-5e6f7a8b").exists()
    AdapterStore(root)
    assert not (root / ".tmp-busy-5e6f7a8b").exists()


SAVER = """
import sys, time
from adapterxl.locks import LockedError
from adapterxl.store import AdapterStore

root, who, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
manifest = {"kind": "adapter", "task": "mnli", "base_model": "tiny-xlmr", "adapter_config": "seq_bn"}
store = AdapterStore(root)
while time.time() < start:  # every process saves at the same moment
    time.sleep(0.001)
for i in range(4):
    store.save(f"{who}-{i}", lambda d: (d / "adapter.safetensors").write_bytes(who.encode() * 200_000), manifest, "c")
try:
    store.save("shared", lambda d: (d / "adapter.safetensors").write_bytes(who.encode() * 200_000), manifest, "c")
    print("saved")
except LockedError:
    print("refused")
"""


def test_workers_saving_into_one_store_at_once_leave_every_entry_whole(tmp_path):
    """Four processes (Ray workers on shared storage) each save 4 entries and all one same entry at
    once: every entry verifies, the shared one is one writer's whole, nothing half-written is left."""
    import subprocess
    import sys
    import time

    start = time.time() + 3
    procs = [
        subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path), f"w{n}", str(start)], stdout=subprocess.PIPE)
        for n in range(4)
    ]
    outcomes = [p.communicate(timeout=120)[0].decode().strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and set(outcomes) <= {"saved", "refused"} and "saved" in outcomes
    store = AdapterStore(tmp_path)
    assert sorted(store.names()) == sorted([f"w{n}-{i}" for n in range(4) for i in range(4)] + ["shared"])
    for name in store.names():
        content = store.verify(name).path.joinpath("adapter.safetensors").read_bytes()
        writer = name.split("-")[0] if name != "shared" else content[:2].decode()
        assert content == writer.encode() * 200_000
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no .tmp-, .old-, .lock- left
