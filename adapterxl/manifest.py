"""The record of a run: a typed, versioned :class:`Manifest`, written as ``manifest.json`` into
the run folder and into its store entry, and read back (by the store, modeling, grids, reports
and the CLI) only through :meth:`Manifest.from_dict`.

Version 1 added ``manifest_version``; manifests written before it (version 0) have the same keys
and read unchanged. A manifest of a newer version is refused with the fix (upgrade adapterxl).
"""

from __future__ import annotations

import dataclasses
import platform
import subprocess
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import StoreError

MANIFEST_VERSION = 1
# What a store entry holds (``Manifest.kind``): one adapter with its head(s), or a whole setup.
ADAPTER_ENTRY, SETUP_ENTRY = "adapter", "setup"


@dataclass
class Manifest:
    """What a run was (task, mode, adapters, backbone, config, versions) and what it measured."""

    name: str
    base_model: str
    task: str = ""  # "+"-joined for a multi-task run
    kind: str | None = None  # store entries: "adapter" (one adapter + head) or "setup" (a composition)
    mode: str | None = "adapter"  # None: pulled from a repo adapterxl did not write
    tasks: list[str] = field(default_factory=list)
    task_family: str | None = None
    labels: list[str] = field(default_factory=list)
    task_declarations: dict[str, dict] = field(default_factory=dict)  # declared tasks travel with the entry
    adapter_config: str | None = None  # None: full fine-tuning
    base_model_source: str | None = None  # backbones.backbone_source
    base_model_revision: str | None = None
    setup: list[str] | None = None  # adapter names of the active setup, in order
    composition: str | None = None
    head: str | None = None
    heads: dict[str, str] = field(default_factory=dict)  # head -> task
    seed: int | None = None
    license: str | None = "mit"  # None: pulled from a repo adapterxl did not write (its own terms)
    config: dict[str, Any] = field(default_factory=dict)  # RunConfig.to_dict()
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    device: str | None = None
    parameters: dict[str, int] = field(default_factory=dict)
    data_sizes: dict = field(default_factory=dict)
    train_languages: list[str] = field(default_factory=list)
    dev: dict[str, Any] = field(default_factory=dict)  # metric, best, best_step, steps, history
    eval_split: str = "validation"
    metrics: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    train_seconds: float | None = None
    train_tokens: int | None = None  # steps x examples per step x mean tokens per example (no padding)
    created: str | None = None
    # What some modes and runs add (left out of the JSON when absent):
    fusion: dict | None = None  # phases, attention per language
    initialized_from: str | None = None  # the intermediate a continuing mode trained on from
    resumed_from_step: dict[str, int] | None = None  # phase -> Trainer checkpoint step
    sampling: dict | None = None  # multi-task batch sampling
    language_adapters: dict[str, str] | None = None  # language -> adapter used at evaluation
    wall_seconds: float | None = None
    files: dict[str, str] | None = None  # store entries: file -> sha256
    source: dict | None = None  # pulled entries: {repo, revision} on the Hub
    manifest_version: int = MANIFEST_VERSION

    OPTIONAL: typing.ClassVar[tuple[str, ...]] = (
        "kind", "fusion", "initialized_from", "resumed_from_step", "sampling", "language_adapters",
        "wall_seconds", "files", "source",
    )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v for k, v in data.items() if not (k in self.OPTIONAL and v is None)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest") -> Manifest:
        """A manifest from its JSON; missing required keys, a newer version or unknown keys are a
        StoreError naming ``where``."""
        if not isinstance(data, dict):
            raise StoreError(f"{where}: a manifest is a JSON object, got {type(data).__name__}")
        version = data.get("manifest_version", 0)
        if not isinstance(version, int) or version > MANIFEST_VERSION:
            raise StoreError(
                f"{where}: manifest version {version!r} was written by a newer adapterxl (this one reads up to "
                f"{MANIFEST_VERSION}): upgrade adapterxl (pip install -U adapterxl)"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise StoreError(
                f"{where}: unknown manifest key(s) {unknown} for manifest version {version}: edited by hand, or "
                "written by another adapterxl; upgrade adapterxl or train the entry again"
            )
        missing = [k for k in ("name", "base_model") if k not in data]
        if missing:
            raise StoreError(f"{where}: the manifest lacks {missing}: the entry is damaged; train it again")
        return cls(**{**data, "manifest_version": MANIFEST_VERSION})


def versions() -> dict[str, str]:
    """Versions of the libraries that decide the numbers."""
    import adapters
    import datasets
    import torch
    import transformers

    from . import __version__

    return {
        "adapterxl": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "adapters": adapters.__version__,
        "datasets": datasets.__version__,
    }


def git_commit() -> str | None:
    """The commit of the adapterxl checkout this code runs from, with ``-dirty`` for uncommitted
    changes; None for an installed copy (one that is not the top of its own git checkout)."""
    package = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=package, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != package.parent:
            return None  # e.g. a virtual environment inside some other repository
        dirty = git("status", "--porcelain", "--", ".")
        return git("rev-parse", "HEAD") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
