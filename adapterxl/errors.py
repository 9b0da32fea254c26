"""Exceptions raised by adapterxl, and the shared checks that raise them (names, keys).

Every error a user can cause (config, data, store, CLI arguments) is an :class:`AdapterXLError`
whose message names the wrong value and the fix. The CLI prints these without a traceback.
"""

from __future__ import annotations

import difflib
import re


class AdapterXLError(ValueError):
    """Base class of all user-facing adapterxl errors."""


class ConfigError(AdapterXLError):
    """A run or pipeline config is invalid (unknown key, task, mode, language, adapter config)."""


class DataError(AdapterXLError):
    """A dataset could not be loaded or does not match the task's schema."""


class HubUnavailable(DataError):
    """A Hub dataset could not be loaded (offline, gated, missing): local files are the way out."""


class StoreError(AdapterXLError):
    """An adapter store entry is missing, invalid or incompatible with the run."""


class Origin(str):
    """Where a dataset's rows came from: prints as the description used in messages (a file, a
    Hub dataset and split), and, for local files, finds the file and line that hold a row."""

    files: tuple[str, ...] = ()

    def __new__(cls, text: str, files: tuple[str, ...] | list[str] = ()) -> Origin:
        origin = super().__new__(cls, text)
        origin.files = tuple(files)
        return origin

    def row(self, index: int) -> str:
        """``FILE, line N`` (JSON Lines, CSV, TSV, text) or ``FILE, record N`` (JSON arrays,
        parquet; from 1) of row ``index`` (from 0) of the concatenated files; ``..., row N`` for
        Hub data."""
        if not self.files:
            return f"{self}, row {index}"
        for path in self.files:
            count, place = _find_row(path, index)
            if place is not None:
                return f"{path}, {place}"
            index -= count
        return f"{self}, row {index}"


def at_row(where: str, index: int) -> str:
    """Where row ``index`` of data described by ``where`` (an :class:`Origin` or plain text) is."""
    return where.row(index) if isinstance(where, Origin) else f"{where}, row {index}"


def _find_row(path: str, index: int) -> tuple[int, str | None]:
    """(rows in the file, where row ``index`` of it is, or None when the file has fewer rows)."""
    import csv
    import json
    from pathlib import Path

    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        count = pq.ParquetFile(path).metadata.num_rows
        return count, (f"record {index + 1}" if index < count else None)
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    if suffix == ".json" and text.lstrip().startswith("["):  # one JSON array of records
        count = len(json.loads(text))
        return count, (f"record {index + 1}" if index < count else None)
    if suffix in (".csv", ".tsv"):
        reader = csv.reader(text.splitlines(keepends=True), delimiter="\t" if suffix == ".tsv" else ",")
        next(reader, None)  # the header
        start, count = reader.line_num + 1, 0
        for _ in reader:
            if count == index:
                return count + 1, f"line {start}"
            count, start = count + 1, reader.line_num + 1
        return count, None
    # JSON Lines skip blank lines; text files keep them (one row per line).
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if suffix == ".txt" or line.strip():
            if count == index:
                return count + 1, f"line {number}"
            count += 1
    return count, None


# -- checks shared by config files, grid files and task declarations ---------------------------------

# Store, run and task names become folder and adapter names.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,99}$")


def check_name(name: str) -> str:
    """Store names become folder and adapter names: letters, digits, ``-`` and ``_`` only."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(
            f"invalid adapter name {name!r}: use 1-100 letters, digits, '-' or '_', starting with a "
            "letter or digit (no '/', '.', ',' or spaces)"
        )
    return name


def suggest(value: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to ``value``, or ``""``."""
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(data, known, where: str, described: bool = False) -> None:
    """A key of ``data`` not in ``known`` is a ConfigError naming it, the closest known key and the
    known keys (``described``: ``known`` maps each key to what it means, listed too)."""
    unknown = [k for k in data if k not in known]
    if unknown:
        key = unknown[0]
        listing = "; ".join(f"{k}: {v}" for k, v in known.items()) if described else f"valid keys: {sorted(known)}"
        raise ConfigError(f"{where}: unknown key {key!r}{suggest(key, known)}; {listing}")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library errors can run to pages)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"
