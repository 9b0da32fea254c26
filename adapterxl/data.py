"""Dataset sources: the Hub (id, config, split, revision) or local files in the same schema.

Every loader returns a ``datasets.Dataset`` whose columns are the task family's *roles* (for
classification: text, text_pair, label) with labels as indices, so nothing downstream depends on
where the data came from. Problems (dataset unreachable, file missing, column missing, label
unknown, empty split) are DataErrors raised here, before any training starts.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .config import DataConfig
from .errors import DataError, HubUnavailable, Origin, at_row, first_line
from .tasks import Task, optional_roles

_BUILDERS = {
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".txt": "text",  # one example per line, column "text" (MLM corpora)
}


@dataclass
class TaskData:
    """The data of one run: English train and dev sets, and one evaluation set per language."""

    train: object | None
    dev: object | None
    evaluation: dict[str, object] = field(default_factory=dict)

    def sizes(self) -> dict:
        return {
            "train": len(self.train) if self.train is not None else 0,
            "dev": len(self.dev) if self.dev is not None else 0,
            "evaluation": {lang: len(ds) for lang, ds in self.evaluation.items()},
        }


def load_task_data(task: Task, data: DataConfig, train: bool = True, seed: int = 0) -> TaskData:
    """Load everything a run needs: the training set (English, or ``data.train_languages`` mixed
    in their shares), the English dev set (if ``train``) and every evaluation language's
    ``data.eval_split``. Evaluation sets are capped at ``data.max_eval_examples``.

    A task without a labelled validation split (MLM text) holds out ``task.held_out_dev`` rows of
    each training language's training data as dev and evaluation sets.
    """
    lang = task.train_language
    if task.held_out_dev and not _has_split(task, "validation", data):
        return _held_out(task, data, train, seed)
    languages = data.languages or list(task.languages)
    train_ds = dev_ds = None
    if train:
        train_ds = _training_mix(task, data, seed)
        dev_ds = load_split(task, "validation", lang, data, data.max_eval_examples, training=True)
    same_source = task.train_source is None or "validation" in local_files(task, data)
    evaluation = {}
    for language in languages:
        split = task.split_for(language, data.eval_split)
        if train and language == lang and split == "validation" and same_source:
            evaluation[language] = dev_ds  # same rows: load once
        else:
            evaluation[language] = load_split(task, split, language, data, data.max_eval_examples)
    return TaskData(train_ds, dev_ds, evaluation)


def training_languages(task: Task, data: DataConfig) -> dict[str, float | None]:
    """``{language: share}`` of the training data; share None: the language's whole train split."""
    spec = data.train_languages
    if spec is None:
        return {task.train_language: None}
    if isinstance(spec, dict):
        total = sum(spec.values())
        return {lang: share / total for lang, share in spec.items()}
    return dict.fromkeys(spec)


def _training_mix(task: Task, data: DataConfig, seed: int):
    """The training set: one language's train split, or several concatenated (each capped at
    ``data.max_train_examples``), or several in given shares of ``data.max_train_examples`` (else
    of the largest one's size), each language's rows drawn at random without replacement."""
    import datasets

    shares = training_languages(task, data)
    if list(shares.values()) == [None]:
        return load_split(task, "train", next(iter(shares)), data, data.max_train_examples, training=True)
    parts = {
        lang: load_split(task, "train", lang, data, None if share else data.max_train_examples, training=True)
        for lang, share in shares.items()
    }
    if all(share is None for share in shares.values()):
        return datasets.concatenate_datasets(list(parts.values()))
    total = data.max_train_examples or max(len(ds) for ds in parts.values())
    chosen = []
    for lang, ds in parts.items():
        wanted = round(shares[lang] * total)
        if wanted > len(ds):
            raise DataError(
                f"task {task.name!r}: language {lang!r} has {len(ds)} training rows, but its share of "
                f"{shares[lang]:.2f} x {total} needs {wanted}: lower data.max_train_examples or its share"
            )
        chosen.append(ds.shuffle(seed=seed).select(range(wanted)))
    return datasets.concatenate_datasets(chosen).shuffle(seed=seed)


_FINGERPRINTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process


def data_fingerprints(task: Task, data: DataConfig) -> dict[str, str]:
    """``{path: sha256}`` of every local file the task's data settings name (``{lang}`` as any
    language), so that a file changed in place is noticed (grids keep them in their job records)."""
    import hashlib

    out = {}
    for spec in local_files(task, data).values():
        for template in spec.values() if isinstance(spec, dict) else [spec]:
            for path in sorted(glob.glob(template.replace("{lang}", "*"))):
                stat = os.stat(path)
                key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
                if key not in _FINGERPRINTS:
                    digest = hashlib.sha256()
                    with open(path, "rb") as f:
                        for block in iter(lambda: f.read(1 << 20), b""):
                            digest.update(block)
                    _FINGERPRINTS[key] = digest.hexdigest()
                out[path] = _FINGERPRINTS[key]
    return out


def local_files(task: Task, data: DataConfig) -> dict[str, str | dict[str, str]]:
    """Local files per split: the run's ``data.data_files`` over a declared task's own (whose value
    may map languages to files)."""
    return {**task.data_files, **data.data_files}


def _local_file(task: Task, split: str, language: str, data: DataConfig) -> str | None:
    """The local file (pattern) of ``split`` in ``language``, or None: the split comes from the Hub. A
    per-language mapping without ``language`` is an error unless the task's Hub source has the split."""
    spec = local_files(task, data).get(split)
    if not isinstance(spec, dict):
        return spec
    hub = task.source_for(True)
    if language not in spec and not (hub and split in hub.splits):
        raise DataError(
            f"task {task.name!r}: data.{split} names files for {sorted(spec)}, not for {language!r}: add "
            f"{language}: PATH, or drop {language!r} from the evaluation languages"
        )
    return spec.get(language)


def retrieval_rows(task: Task, language: str, split: str, data: DataConfig):
    """Rows of a retrieval task's split in ``language`` from local files (the run's
    ``data.data_files`` over a declared task's own) or the Hub, with the task's columns checked."""
    local = _local_file(task, split, language, data)
    if local:
        ds, where = _load_local(local, language, task, split)
    else:
        ((ds, where),) = _load_hub(task, split, language)
    missing = [c for c in task.columns.values() if c not in ds.column_names]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; the data has {ds.column_names}")
    if len(ds) == 0:
        raise DataError(f"{where}: no sentences")
    return ds


def _has_split(task: Task, split: str, data: DataConfig) -> bool:
    src = task.source_for(True)
    return split in local_files(task, data) or bool(src and split in src.splits)


def _held_out(task: Task, data: DataConfig, train: bool, seed: int) -> TaskData:
    """Per training language: hold out ``task.held_out_dev`` rows (at most a tenth) for evaluation;
    the dev set is all held-out rows together."""
    import datasets

    train_parts, evaluation = [], {}
    for lang in training_languages(task, data):
        ds = load_split(task, "train", lang, data, None, training=True).shuffle(seed=seed)
        n_dev = min(task.held_out_dev, len(ds) // 10, data.max_eval_examples or len(ds))
        if n_dev == 0:
            raise DataError(f"task {task.name!r} ({lang}): {len(ds)} rows are too few to hold out a dev set")
        evaluation[lang] = ds.select(range(n_dev))
        rest = ds.select(range(n_dev, len(ds)))
        if data.max_train_examples is not None:
            rest = rest.select(range(min(data.max_train_examples, len(rest))))
        train_parts.append(rest)
    if not train:
        return TaskData(None, None, evaluation)
    dev = datasets.concatenate_datasets(list(evaluation.values()))
    return TaskData(datasets.concatenate_datasets(train_parts).shuffle(seed=seed), dev, evaluation)


def load_split(
    task: Task, split: str, language: str, data: DataConfig, max_examples: int | None = None, training: bool = False
):
    """One split of one language of ``task``, renamed to roles, labels normalised, capped.
    ``training``: the split feeds training or model selection (the task's training sources)."""
    ds, where = _load_roles(task, split, language, data, training)
    ds = task.family.prepare(ds, task, where)
    if max_examples is not None:
        ds = ds.select(range(min(max_examples, len(ds))))
    if len(ds) == 0:
        raise DataError(f"{where}: the {split} split of task {task.name!r} ({language}) has no labelled rows")
    return ds


def with_labels(task: Task, data: DataConfig) -> Task:
    """``task`` with a label set: a task without a fixed one (CCG supertags, a declared task without
    ``labels:``) takes the labels found in its training data: the sorted names, or, for labels given
    as indices, 0..max (multiple choice: one per choice). ``labels_from`` records where they came from."""
    if task.labels or not task.family.has_labels:
        return task
    import dataclasses
    from itertools import chain

    ds, where = _load_roles(task, "train", task.train_language, data, training=True)
    column = "tags" if "tags" in ds.column_names else "label"
    values = ds[column]
    found = set(chain.from_iterable(values)) if column == "tags" else set(values)
    if found and all(isinstance(v, int) and not isinstance(v, bool) for v in found):
        count = max(found) + 1
        if "choices" in ds.column_names and len(ds):
            count = max(count, len(ds[0]["choices"]))
        labels = tuple(str(i) for i in range(count))
    else:
        labels = tuple(sorted(str(v) for v in found if v is not None))
    if not labels:
        raise DataError(f"{where}: no labels in the training data of task {task.name!r}: declare them with labels:")
    return dataclasses.replace(task, labels=labels, labels_from=str(where))


def _load_roles(task: Task, split: str, language: str, data: DataConfig, training: bool):
    """The split's rows with role columns (every source concatenated) and where they came from."""
    local = _local_file(task, split, language, data)
    if local is not None:
        parts = [_load_local(local, language, task, split)]
        mixed = "{lang}" not in local and not isinstance(local_files(task, data)[split], dict)
    else:
        parts = _load_hub(task, split, language, training)
        mixed = True
    selected = []
    prefix = task.id_prefixes.get(language)
    id_column = task.columns.get("id", "id")
    for raw, where in parts:
        if prefix and mixed and id_column in raw.column_names:  # one file or config for all languages
            raw = raw.filter(
                lambda i: i.startswith(prefix + "-"), input_columns=id_column, desc=f"Selecting {language}"
            )
            where += f", ids starting with {prefix!r}"
        selected.append(
            (_check_values(_select_roles(raw, task, data.columns, where), task, data.columns, where), where)
        )
    if len(selected) == 1:
        ds, where = selected[0]
    else:
        import datasets

        # Several sources: concatenate (a shuffled concatenation samples each in proportion to its size).
        ds = datasets.concatenate_datasets([_plain_features(d) for d, _ in selected])
        where = " + ".join(w for _, w in selected)
    return ds, where


def _plain_features(ds):
    """Class-label columns as plain integers, so that sources with different label features concatenate."""
    import datasets

    for name, feature in ds.features.items():
        if isinstance(feature, datasets.ClassLabel):
            ds = ds.cast_column(name, datasets.Value("int64"))
    return ds


def _load_local(template: str, language: str, task: Task, split: str):
    import datasets

    path = template.replace("{lang}", language)
    files = sorted(glob.glob(path))
    if not files:
        relative = "" if os.path.isabs(path) else f"; relative paths start at the working directory {os.getcwd()}"
        raise DataError(
            f"no file matches {path!r} (data.data_files.{split} of task {task.name!r}, language "
            f"{language!r}); check the path, or use {{lang}} in it for per-language files{relative}"
        )
    suffix = Path(files[0]).suffix.lower()
    builder = _BUILDERS.get(suffix)
    if builder is None:
        raise DataError(f"{files[0]}: unsupported file type {suffix!r}; use one of {sorted(_BUILDERS)}")
    other = [f for f in files if Path(f).suffix.lower() != suffix]
    if other:
        raise DataError(f"{path!r} matches files of two types ({files[0]}, {other[0]}): one split is one file type")
    # An empty file has no rows (datasets cannot even read an empty JSON Lines file): skip it; all empty is an error.
    files = [f for f in files if not _blank(f)]
    if not files:
        raise DataError(
            f"{path} is empty: the {split} split of task {task.name!r} ({language}) needs at least one row "
            f"(data.data_files.{split})"
        )
    kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
    where = Origin(files[0] if len(files) == 1 else f"{path} ({len(files)} files)", files)
    if builder != "parquet":
        for file in files:
            _check_utf8(file)
    try:
        ds = datasets.load_dataset(builder, data_files=files, split="train", **kwargs)
    except Exception as exc:  # datasets raises many types for unreadable files
        for file in files:  # say which line when a reader of our own can tell
            _check_structure(file, suffix)
        raise DataError(f"{where}: could not read as {builder}: {type(exc).__name__}: {first_line(exc)}") from exc
    return ds, where


def _check_utf8(path: str) -> None:
    """A text data file must be UTF-8: a DataError names the file, line and byte otherwise."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): save the file "
            "as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _check_structure(path: str, suffix: str) -> None:
    """Find the line that made a JSON Lines, JSON or CSV / TSV file unreadable (a DataError), if any."""
    import csv
    import json

    text = Path(path).read_text(encoding="utf-8")
    if suffix == ".json" and text.lstrip().startswith("["):
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        return
    if suffix in (".json", ".jsonl"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}, line {number}: not valid JSON ({exc.msg}, column {exc.colno}); JSON Lines hold one "
                    "JSON object per line"
                ) from None
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {number}: a JSON Lines row is an object {{...}}, got {line[:60]!r}")
        return
    if suffix in (".csv", ".tsv"):
        reader = csv.reader(text.splitlines(keepends=True), delimiter="\t" if suffix == ".tsv" else ",")
        header = next(reader, [])
        start = reader.line_num + 1
        for fields in reader:
            if fields and len(fields) != len(header):
                raise DataError(
                    f"{path}, line {start}: {len(fields)} fields, but the header has {len(header)} "
                    f"({', '.join(header)}): quote fields that hold the separator"
                )
            start = reader.line_num + 1


def _load_hub(task: Task, split: str, language: str, training: bool = False) -> list[tuple]:
    """``[(dataset, where)]`` for every Hub split that makes up ``split``: a split may combine
    several splits of one dataset (ANLI rounds), and training data may add other datasets
    (``task.extra_sources``: ANLI+ adds MNLI and SNLI)."""
    import datasets

    src = task.source_for(training)
    if src is None:
        raise DataError(task.no_hub_reason or f"task {task.name!r} has no Hub source: give data.data_files")
    if language in task.local_only_languages:
        raise DataError(
            f"task {task.name!r} has no Hub source for language {language!r} (the Hub copy covers "
            f"{len(task.languages) - len(task.local_only_languages)} of its languages): give local files in the same "
            f"schema with data.data_files.{split}: path/{{lang}}/{split}.jsonl"
        )
    if split not in src.splits:
        raise DataError(
            f"task {task.name!r} has no labelled {split!r} split on the Hub (has {sorted(src.splits)}); "
            f"point data.data_files.{split} at a local file instead"
        )
    sources = [src, *(task.extra_sources if training else ())]
    wanted = [(s, hub_split) for s in sources if split in s.splits for hub_split in _splits_of(s.splits[split])]
    parts = []
    for source, hub_split in wanted:
        config = source.config_for(language)
        where = f"Hub dataset {source.path!r}" + (f", config {config!r}" if config else "") + f", split {hub_split!r}"
        options = {"data_dir": source.data_dir} if source.data_dir else {}
        if source.data_dir:
            where += f", folder {source.data_dir!r}"
        try:
            ds = datasets.load_dataset(source.path, config, split=hub_split, revision=source.revision, **options)
        except Exception as exc:  # offline, unknown id or config, gated: all end here
            raise HubUnavailable(_hub_failure(task, source, where, split, exc)) from exc
        parts.append((ds, where))
    return parts


def _is_gated_error(exc: BaseException) -> bool:
    """True when ``exc`` (or the exception it was raised from) says the repo is gated: the Hub's
    GatedRepoError, an HTTP 401 / 403, or datasets' "is a gated dataset" message."""
    from huggingface_hub.errors import GatedRepoError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, GatedRepoError) or status in (401, 403) or re.search(r"\bgated\b", str(exc), re.I):
            return True
        exc = exc.__cause__
    return False


def _hub_failure(task: Task, source, where: str, split: str, exc: Exception) -> str:
    """The message of a Hub source that did not load: gated repos say how to get access; others
    how to use local files instead (plus the source's own hint)."""
    local = (
        f"point the task at local files in the same schema (columns: "
        f"{', '.join(c for spec in task.columns.values() for c in _columns_of(spec))}), e.g. "
        f"data.data_files.{split}: path/to/{task.name}/{{lang}}/{split}.jsonl"
    )
    reason = f"{type(exc).__name__}: {first_line(exc)}"
    access = (
        f"accept the dataset's terms on the Hub (https://huggingface.co/datasets/{source.path}) and log in "
        "(`hf auth login`, or set HF_TOKEN)"
    )
    if _is_gated_error(exc):
        return f"could not load {where}: the dataset is gated ({reason}); {access}, then run again; or {local}"
    if source.gated:
        gated = f"This dataset is gated: {access}"
        return f"could not load {where} ({reason}). {gated}. If this machine cannot reach the Hub, {local}"
    text = f"could not load {where} ({reason}). "
    if source.hint:
        return text + source.hint
    return text + f"If this machine is offline or cannot reach the Hub, {local}"


def _splits_of(spec: str | tuple[str, ...]) -> list[str]:
    return [spec] if isinstance(spec, str) else list(spec)


def _columns_of(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    return [spec] if isinstance(spec, str) else list(spec)


def _select_roles(ds, task: Task, overrides: dict, where: str):
    """Keep the columns the task's roles map to, renamed to the roles. A role may map to several
    columns (gathered into one list per row, e.g. answer0..answer3 -> choices) or to a nested
    field (``choices.text``)."""
    columns = {**task.columns, **overrides}
    if task.declaration:  # optional roles (a QA id, a text pair) default to their own names too
        columns |= {role: role for role in optional_roles(task.family.name) if role not in columns}
        columns = {r: c for r, c in columns.items() if r in task.columns or r in overrides or c in ds.column_names}
    if any("." in c for spec in columns.values() for c in _columns_of(spec)):
        ds = ds.flatten()
    missing = {c: role for role, spec in columns.items() for c in _columns_of(spec) if c not in ds.column_names}
    if missing:
        wanted = ", ".join(f"{col!r} (role {role})" for col, role in missing.items())
        raise DataError(
            f"{where}: missing column(s) {wanted}; the data has columns {ds.column_names}. Rename the "
            f"columns in the data, or map roles to your columns with data.columns, e.g. "
            f"{{{next(iter(missing.values()))}: YOUR_COLUMN}}"
        )
    if all(isinstance(spec, str) for spec in columns.values()):
        # Zero-copy: select and rename (through temporary names, so swapped names cannot collide).
        ds = ds.select_columns(list(dict.fromkeys(columns.values())))
        ds = ds.rename_columns({col: f"__role_{role}" for role, col in columns.items()})
        return ds.rename_columns({f"__role_{role}": role for role in columns})

    def to_roles(batch):
        return {
            role: batch[spec]
            if isinstance(spec, str)
            else [list(row) for row in zip(*(batch[c] for c in spec), strict=True)]
            for role, spec in columns.items()
        }

    return ds.map(to_roles, batched=True, remove_columns=ds.column_names, desc="Selecting columns")


# Roles whose values are one text per row, and roles whose values are a list of texts per row.
TEXT_ROLES = ("text", "text_pair", "context", "question")
TEXT_LIST_ROLES = ("tokens", "choices")


def _check_values(ds, task: Task, overrides: dict, where: str):
    """Every role column has a value in every row, and text roles hold text: a row without one
    (a JSON Lines line missing the key, an empty CSV cell) is a DataError naming file and line."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = {**task.columns, **overrides}
    table = ds.with_format("arrow")[:]
    mixed = [r for r in ("label", "tags") if r in table.column_names and "json" in str(table.column(r).type)]
    if mixed:  # labels written partly as names, partly as numbers (JSON): all as text, checked below
        import datasets

        for role in mixed:
            texts = [
                v if isinstance(v, str) else json.dumps(v) for v in map(json.loads, table.column(role).to_pylist())
            ]
            ds = ds.remove_columns(role).add_column(role, [t.strip('"') for t in texts])
            ds = ds.cast_column(role, datasets.Value("string"))
        table = ds.with_format("arrow")[:]
    for role in table.column_names:
        values = table.column(role)
        named = f"column {columns.get(role, role)!r} (role {role})"
        if values.null_count:
            first = pc.index(pc.is_null(values), True).as_py()
            raise DataError(
                f"{at_row(where, first)}: no value for {named} of task {task.name!r}; every row needs one "
                "(fix the row or drop it)"
            )
        kind = values.type
        if role in TEXT_LIST_ROLES and (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
            kind = kind.value_type
        elif role in TEXT_LIST_ROLES:
            raise DataError(f"{where}: {named} of task {task.name!r} holds {kind}, not a list of texts per row")
        if role in (*TEXT_ROLES, *TEXT_LIST_ROLES) and not (
            pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
        ):
            first, value = _first_non_text(values, role in TEXT_LIST_ROLES)
            raise DataError(
                f"{at_row(where, first)}: {named} of task {task.name!r} holds "
                + (f"{value!r}, not text" if "json" in str(kind) else f"{kind} values, not text (here {value!r})")
                + ": is it the right column? Fix the row, or map the role to a text column with data.columns (or a "
                "declared task's columns:)"
            )
    return ds


def _first_non_text(values, lists: bool) -> tuple[int, object]:
    """(index, value) of the first value that is not text (``lists``: not a list of texts). Mixed
    JSON values arrive as JSON text (pyarrow's json extension type): those are parsed first."""
    import json

    def text(v) -> bool:
        return isinstance(v, str) or (lists and isinstance(v, list) and all(isinstance(x, str) for x in v))

    for i, raw in enumerate(values.to_pylist()):
        value = raw
        if isinstance(raw, str) and "json" in str(values.type):
            try:
                value = json.loads(raw)
            except ValueError:
                pass
        if not text(value):
            return i, value
    return 0, values[0].as_py()


def _blank(path: str) -> bool:
    with open(path, "rb") as f:
        return not f.read(4096).strip() and os.path.getsize(path) <= 4096
