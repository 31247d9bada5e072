"""The training job's entry point: the harness's start-up, one marker line, then train.py as __main__.

    python /harness/launch.py /code/train.py

Mounted read-only into the training sandbox; it imports nothing of the harness. It imports
torch, and torch._dynamo, which the first optimizer and torch.export would import (2.2
CPU-seconds, ten times the rest of the CLIP example's set-up): the start-up the harness pays
for, alike for every train.py. Then it prints MARKER before any line of train.py runs: the
harness starts the budget clock at the first MARKER in the job's output, so nothing train.py
does can move it. At the budget the harness sends STOP_SIGNAL to every process of the job, and
again every second until it ends. SIGURG is ignored by default, so a process that does
not listen for it (a script that stops at its own clock, an export in progress, a data-loader
worker) is not hurt by it.
"""

import os
import runpy
import signal
import sys

MARKER = "@@autoresearch-start"
STOP_SIGNAL = signal.SIGURG


def main() -> None:
    import torch  # noqa: F401 - the heavy start-up, before the clock
    import torch._dynamo  # noqa: F401 - what the first optimizer and torch.export import: 2 CPU-s of sympy and more

    script = sys.argv[1]
    print(f"{MARKER} (torch imported; the budget runs from here)", flush=True)
    sys.argv = sys.argv[1:]  # train.py sees the argv it would see when run directly
    sys.path[0] = os.path.dirname(script)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
