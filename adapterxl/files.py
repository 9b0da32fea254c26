"""Files on disk: atomic writes of JSON and of model folders, and adapterxl's cache folder.

Every write that another process (or a later run) reads goes through a temporary file or folder
and a rename, so an interrupted write leaves the previous version or nothing, never half a file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path


def cache_dir() -> Path:
    """Where adapterxl keeps what it builds once (``$ADAPTERXL_CACHE`` or ``~/.cache/adapterxl``)."""
    root = os.environ.get("ADAPTERXL_CACHE") or Path.home() / ".cache" / "adapterxl"
    return Path(root)


def write_json(path: str | Path, data) -> None:
    """Write ``data`` as UTF-8 JSON atomically (a temporary file of this process, then a rename), its
    folder created if need be: a reader sees the old file or the new one, and two processes writing at
    once never mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save_model_folder(
    model, tokenizer, target: Path, files: dict[str, str] | None = None, replace: bool = False
) -> Path:
    """Save a model + tokenizer (and ``files``: name -> text) to ``target`` through a temporary
    folder and a rename, so an interrupted save leaves no half model. ``replace``: a folder already
    at ``target`` is replaced (a run's saved model); otherwise one that appeared meanwhile (another
    process built the same cache entry) is kept."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp's folders are private; a model folder is readable like any other
        if replace and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except OSError:
        if replace or not (target / "config.json").is_file():  # lost a race with another build: fine
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def dump_yaml(data) -> str:
    """Plain YAML of ``data``: keys in their order, Unicode as is, and no ``&id001`` anchors or
    ``*id001`` aliases for values that occur twice (each is written out)."""
    import yaml

    class PlainDumper(yaml.SafeDumper):
        def ignore_aliases(self, data) -> bool:
            return True

    return yaml.dump(data, Dumper=PlainDumper, sort_keys=False, allow_unicode=True)
