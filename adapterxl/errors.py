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
