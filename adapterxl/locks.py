"""Locks for what two processes must not write at once: a store entry, a grid's results folder.

A lock is a file created atomically (``O_CREAT | O_EXCL``, which network filesystems such as NFS v3+
honour) holding its owner's pid, host and start time. While held, a background thread touches it
every :data:`HEARTBEAT` seconds. A second process that finds the file gets a :class:`LockedError`
at once, naming the owner; a lock whose owner is gone is taken over: on the same host when its pid
no longer runs, on another host when its heartbeat is older than :data:`STALE_AFTER` seconds.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from .errors import AdapterXLError

HEARTBEAT = 30.0  # seconds between touches of a held lock
STALE_AFTER = 600.0  # a lock of another host untouched this long belongs to a dead process


class LockedError(AdapterXLError):
    """Another live process holds the lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:  # a killed process its parent has not reaped yet (a zombie) is gone too
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # it just ended, or there is no /proc (macOS)
        return not Path("/proc/self").is_dir()
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _owner(path: Path) -> dict | None:
    """The lock file's owner record; None when it is gone; {} when it cannot be read (being written)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def is_stale(path: Path, owner: dict | None = None) -> bool:
    """Whether the lock at ``path`` belongs to a process that is gone."""
    owner = _owner(path) if owner is None else owner
    if owner is None:
        return True
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if not owner:  # unreadable: stale only once nobody has touched it for a while
        return age > STALE_AFTER
    if owner.get("host") == socket.gethostname():
        return not _alive(int(owner.get("pid", -1)))
    return age > STALE_AFTER


class Lock:
    """``with Lock(path, what): ...``: hold the lock file ``path`` (``what`` names the locked thing
    in messages). Reentrant within one process: a nested acquire of the same path is a no-op."""

    _held: dict[str, int] = {}  # path -> depth, in this process

    def __init__(self, path: str | Path, what: str):
        self.path = Path(path)
        self.what = what
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> Lock:
        key = str(self.path.resolve())
        if key in Lock._held:
            Lock._held[key] += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = _owner(self.path)
                if is_stale(self.path, owner):
                    self._take_over()
                    continue
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0))) if owner else "?"
                raise LockedError(
                    f"{self.what} is in use by another adapterxl process (pid {owner.get('pid', '?')} on "
                    f"{owner.get('host', '?')}, since {since}; lock file {self.path}): wait for it to finish, or if "
                    "that process is gone on another machine, delete the lock file"
                ) from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f)
            break
        else:
            raise LockedError(f"{self.what}: could not take the lock {self.path} (it keeps changing hands)")
        Lock._held[key] = 1
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"lock-{self.path.name}")
        self._thread.start()
        return self

    def _take_over(self) -> None:
        """Remove a stale lock; rename first, so two processes taking it over do not both win."""
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        aside.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        key = str(self.path.resolve())
        depth = Lock._held.get(key, 0)
        if depth > 1:
            Lock._held[key] = depth - 1
            return
        Lock._held.pop(key, None)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        owner = _owner(self.path)
        if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def held_by_live_process(path: str | Path) -> bool:
    """Whether a lock file exists at ``path`` and its owner is alive."""
    path = Path(path)
    return path.exists() and not is_stale(path)
