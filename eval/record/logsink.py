"""train.log and score.log: a sandboxed process's output, neutralised, capped, its tail remembered.

The output is kept to be read, never obeyed: its bytes are decoded as UTF-8 (a broken byte as
`\\xNN`) and every control or invisible character is written as its escape (eval/record/text.py),
so `cat runs/<id>/train.log`, metrics.json's log_tail and what ./run.sh prints hold nothing a
terminal would act on. Nothing is echoed while the process runs: ./run.sh shows the tail of a
failed run, quoted. A log bomb must not fill the disk: past LOG_CAP the output is counted, not
kept, and the end of the log still shows its last bytes.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from eval.record.text import visible

LOG_CAP = 8 * 2**20  # characters kept in the log file
TAIL = 4096  # bytes of the output's end remembered for metrics.json and the truncated log


class LogSink:
    def __init__(self, path: Path):
        self.file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by close()
        self.decode = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace").decode
        self.written = 0  # bytes the process wrote
        self.kept = 0  # characters in the file
        self.cut = False
        self.tail = b""

    def __call__(self, chunk: bytes, final: bool = False) -> None:
        self.written += len(chunk)
        self.tail = (self.tail + chunk)[-TAIL:]
        if self.cut:
            return
        text = visible(self.decode(chunk, final))
        self.cut = len(text) > LOG_CAP - self.kept
        text = text[: LOG_CAP - self.kept]
        self.file.write(text)
        self.file.flush()  # `tail -f runs/<id>/train.log` follows the run
        self.kept += len(text)

    def close(self) -> None:
        self(b"", final=True)  # a UTF-8 sequence cut off at the very end
        if self.cut:
            self.file.write(f"\n[log truncated: {self.written} bytes written, {LOG_CAP} characters kept; "
                            f"the last bytes:]\n{self.tail_text()}")
        self.file.close()

    def tail_text(self) -> str:
        """The end of the output, neutralised (its first character may be part of a cut escape)."""
        return visible(self.tail.decode("utf-8", errors="backslashreplace"))[-TAIL:]
