"""The run's output: streamed to the terminal, kept in a capped log file, its tail remembered.

A log bomb must not fill the disk or the terminal: past the caps the output is counted,
not kept, and the end of the log still shows the last bytes written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

LOG_CAP = 8 * 2**20
ECHO_CAP = 256 * 2**10
TAIL = 4096


class LogSink:
    def __init__(self, path: Path, echo: BinaryIO | None = None):
        self.file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.echo = echo if echo is not None else sys.stdout.buffer
        self.written = 0
        self.tail = b""

    def __call__(self, chunk: bytes) -> None:
        if self.written < LOG_CAP:
            self.file.write(chunk[: LOG_CAP - self.written])
        if self.written < ECHO_CAP and self.echo:
            self.echo.write(chunk[: ECHO_CAP - self.written])
            self.echo.flush()
        self.written += len(chunk)
        self.tail = (self.tail + chunk)[-TAIL:]

    def close(self) -> None:
        if self.written > LOG_CAP:
            note = f"\n[log truncated: {self.written} bytes written, {LOG_CAP} kept; last bytes:]\n"
            self.file.write(note.encode() + self.tail)
        self.file.close()

    def tail_text(self) -> str:
        return self.tail.decode("utf-8", errors="replace")
