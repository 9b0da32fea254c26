"""What adapterxl prints: one clean console for every command.

Three levels (:func:`set_verbosity`, the CLI's ``--quiet`` / ``--verbose``):

- ``normal`` (default): a header per run, one progress bar per training phase (on a terminal;
  none in a pipe or log file) with a rounded line
  per logging step and a line per English dev evaluation, one bar per evaluation over languages,
  a line when a run continues from a checkpoint. The libraries' own progress bars and warnings
  are off; their warnings go to the run's log file (``<run folder>/log.txt``).
- ``quiet``: no progress bars and no per-step lines: only headers, results and errors.
- ``verbose``: everything the libraries print too (progress bars, warnings), and tracebacks.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from pathlib import Path

LEVELS = ("quiet", "normal", "verbose")
_state = {"level": "normal"}
LIBRARIES = ("transformers", "datasets", "adapters", "huggingface_hub", "accelerate", "torch", "py.warnings")


def level() -> str:
    return _state["level"]


def set_verbosity(value: str) -> None:
    """``quiet``, ``normal`` or ``verbose`` for everything adapterxl and the libraries print."""
    if value not in LEVELS:
        raise ValueError(f"verbosity must be one of {LEVELS}, got {value!r}")
    _state["level"] = value
    loud = value == "verbose"
    import datasets
    import transformers

    if loud:
        datasets.enable_progress_bars()
        datasets.logging.set_verbosity_warning()
        transformers.logging.set_verbosity_warning()
        transformers.utils.logging.enable_progress_bar()
    else:
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    logging.getLogger("adapters").setLevel(logging.WARNING if loud else logging.ERROR)
    logging.captureWarnings(not loud)  # library warnings become log records: the run's log file, not the screen


def progress(iterable=None, *, total=None, desc: str = "", unit: str = "it", leave: bool = True, nested: bool = False):
    """A tqdm bar at the current level: off when quiet; ``nested`` bars (inside another bar) only
    when verbose, so one display per phase stays on screen."""
    from tqdm.auto import tqdm

    off = level() == "quiet" or (nested and level() != "verbose")
    # normal level: bars on a terminal only (disable=None: tqdm turns itself off in a pipe or a log file)
    disable = True if off else (False if level() == "verbose" else None)
    leave = leave and not nested
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable, dynamic_ncols=True)


def say(text: str) -> None:
    """A line for the user (not in quiet mode), printed so that an open progress bar stays intact."""
    if level() == "quiet":
        return
    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stdout)


def number(value: float) -> str:
    """A number rounded for reading: 4 significant digits, scientific below 1e-3."""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.2e}"


@contextlib.contextmanager
def run_log(path: str | Path):
    """While a run works: library log records and warnings (off the screen at the normal level)
    are appended to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    loggers = [logging.getLogger(name) for name in LIBRARIES]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.WARNING:  # quiet on screen, recorded in the file
            lg.setLevel(logging.WARNING)
    screen = [h for lg in loggers for h in lg.handlers if h is not handler]
    raised = [(h, h.level) for h in screen]
    if level() != "verbose":
        for h in screen:
            h.setLevel(max(h.level, logging.ERROR))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield path
    finally:
        for lg, old in saved:
            lg.removeHandler(handler)
            lg.setLevel(old)
        for h, old in raised:
            h.setLevel(old)
        handler.close()


def train_callback(name: str, phase: str):
    """A Trainer callback that shows one bar for the phase, a rounded line per logging step and a
    dev line per evaluation (sent by :class:`adapterxl.training.DevSelection`)."""
    from transformers import TrainerCallback

    class TrainProgress(TrainerCallback):
        def __init__(self):
            self.bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            label = f"{name} · {phase}" if phase != "train" else name
            self.bar = progress(total=state.max_steps, desc=f"training {label}", unit="step")
            if state.global_step:
                self.bar.update(state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if level() == "quiet" or "loss" not in logs:
                return
            parts = [f"step {state.global_step}/{state.max_steps}", f"epoch {number(logs.get('epoch', state.epoch))}"]
            parts += [f"{key.replace('_', ' ')} {number(logs[key])}" for key in ("loss", "grad_norm", "learning_rate")
                      if key in logs]  # fmt: skip
            say("  " + " · ".join(parts))

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()

    return TrainProgress()


def dev_line(step: int, metric: str, value: float, best: float, best_step: int) -> None:
    say(f"  dev {metric} {value:.2f} at step {step} (best {best:.2f} at step {best_step})")
