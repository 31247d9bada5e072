"""Build the sandbox image locally from sandbox/Dockerfile and a generated root filesystem."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import docker

from sandbox.job import UID
from sandbox.runtime import system_layout

DOCKERFILE = Path(__file__).with_name("Dockerfile")
ETC = {
    "etc/passwd": f"root:x:0:0:root:/root:/bin/false\nresearcher:x:{UID}:{UID}::/tmp:/bin/false\n"
    "nobody:x:65534:65534::/nonexistent:/bin/false\n",
    "etc/group": f"root:x:0:\nresearcher:x:{UID}:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1 localhost\n",
}
MOUNT_POINTS = ("tmp", "out", "in", "data", "code", "harness", "proc", "dev", "sys")


def context_tar() -> tuple[bytes, str]:
    """The build context as a tar, and a tag that changes whenever the context does."""
    _, links = system_layout()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add(name: str, kind: bytes, data: bytes = b"", link: str = "", mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("Dockerfile", tarfile.REGTYPE, DOCKERFILE.read_bytes(), mode=0o644)
        for d in ("rootfs", "rootfs/etc", *(f"rootfs/{m}" for m in MOUNT_POINTS)):
            add(d, tarfile.DIRTYPE)
        for name, text in ETC.items():
            add(f"rootfs/{name}", tarfile.REGTYPE, text.encode(), mode=0o644)
        for name, target in sorted(links.items()):
            add(f"rootfs/{name}", tarfile.SYMTYPE, link=target)
    digest = hashlib.sha256(DOCKERFILE.read_bytes() + json.dumps([ETC, sorted(links.items())]).encode())
    return buf.getvalue(), f"autoresearch-sandbox:{digest.hexdigest()[:12]}"


def ensure_image(client: docker.DockerClient) -> str:
    """Return the image tag, building it the first time (well under a second, offline)."""
    context, tag = context_tar()
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        client.images.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag, rm=True)
    return tag
