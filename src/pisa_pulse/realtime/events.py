"""What the loop tells the world: JSON-lines events in a log file, one live status line."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path


class EventLog:
    """Append-only JSON lines (`{"ts": …, "event": …, …}`), flushed per line, thread-safe."""

    def __init__(self, path: Path | str | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._file = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", buffering=1)

    def emit(self, event: str, **fields) -> None:
        if self._file is None:
            return
        record = {"ts": round(time.time(), 3), "event": event, **fields}
        line = json.dumps(record, default=str, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class StatusLine:
    """One line rewritten in place (`\\r`), only when the output is a terminal."""

    def __init__(self, stream=None, min_interval: float = 0.5):
        self.stream = stream or sys.stdout
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval = min_interval
        self._last = 0.0
        self._width = 0

    def show(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        pad = max(0, self._width - len(text))
        self._width = len(text)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
