"""A small progress line for long commands: a bar on a terminal, periodic lines in a log."""

import sys
import time


class Progress:
    def __init__(self, total: int, *, label: str, stream=None, every_seconds: float = 5.0):
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self._last_line = 0.0
        self._every = every_seconds
        self._tty = self.stream.isatty()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self._tty:
            self.stream.write("\r" + self._line())
            self.stream.flush()
        elif now - self._last_line >= self._every or self.done >= self.total:
            self.stream.write(self._line() + "\n")
            self._last_line = now

    def finish(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()

    def _line(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(fraction * 30)
        return (
            f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%} "
            f"{self.done}/{self.total}  {self.rate:,.0f} rows/s"
        )
