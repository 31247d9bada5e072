"""Artifacts of your own: a script of the project builds preprocessing state from the training split.

`./run.sh prepare ... --artifacts build_tokenizer.py` runs the script once, in a training sandbox
(no network, the training split at $AUTORESEARCH_DATA, the held-out sources masked), and freezes
what it writes under $AUTORESEARCH_OUT as data/artifacts/, in the manifest and its hash. Training
sees the folder read-only at $AUTORESEARCH_ARTIFACTS, and the scorer hands it to the evaluator
as options["artifacts"]: a tokenizer, merges, normalisation constants, fitted once on training
data and never refitted on held-out data. (eval.data.BUILDERS holds the harness's own, `words`.)
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from eval import heldout
from eval.data import Builder, DataError
from sandbox.job import SANDBOX_ENV, Job, Limits, Mount
from sandbox.runtime import python_executable

BUILD_SECONDS = 600
LIMITS = Limits(memory_gb=4, pids=64, shm_mb=64, output_mb=256, score_seconds=0)


def script_builder(script: Path, backend) -> Builder:
    """A Builder that runs `script` in a training sandbox of `backend`; named by the script and its sha256."""
    source = script.read_bytes()
    name = f"script {script.name} (sha256 {hashlib.sha256(source).hexdigest()[:12]})"

    def build(train: bytes, hidden: dict) -> dict[str, bytes]:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "train.bin").write_bytes(train)
            (Path(tmp) / "build.py").write_bytes(source)
            out = Path(tmp) / "out"
            job = Job(argv=[python_executable(), "/harness/build.py"],
                      mounts=[Mount(Path(tmp) / "train.bin", heldout.TRAIN_DATA),
                              Mount(Path(tmp) / "build.py", "/harness/build.py")],
                      env={**SANDBOX_ENV, "AUTORESEARCH_DATA": heldout.TRAIN_DATA, "AUTORESEARCH_OUT": "/out"},
                      timeout_s=BUILD_SECONDS, limits=LIMITS, out_dir=out, workdir="/out",
                      masks=heldout.masks({"hidden": hidden}))
            log = bytearray()
            result = backend.run(job, lambda chunk: log.extend(chunk[-4000:]))
            if result.exit_code != 0 or result.out_error:
                why = result.out_error or ("timed out" if result.timed_out else f"exit status {result.exit_code}")
                raise DataError(f"--artifacts {script}: the build failed in the {backend.name} sandbox ({why}): "
                                f"{bytes(log[-800:]).decode(errors='replace')}")
            built = {f.relative_to(out).as_posix(): f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()}
        if not built:
            raise DataError(f"--artifacts {script}: it wrote nothing under $AUTORESEARCH_OUT")
        return built

    return Builder(name, build)
