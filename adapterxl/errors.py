"""Exceptions raised by adapterxl.

Every error a user can cause (config, data, store, CLI arguments) is an :class:`AdapterXLError`
whose message names the wrong value and the fix. The CLI prints these without a traceback.
"""

from __future__ import annotations


class AdapterXLError(ValueError):
    """Base class of all user-facing adapterxl errors."""


class ConfigError(AdapterXLError):
    """A run or pipeline config is invalid (unknown key, task, mode, language, adapter config)."""


class DataError(AdapterXLError):
    """A dataset could not be loaded or does not match the task's schema."""


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
