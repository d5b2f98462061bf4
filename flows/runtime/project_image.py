"""The project image for the Docker work pool, built offline: ``thinkflow sandbox setup-docker
--project-image`` (``make docker``).

No registry is reachable, so nothing is installed inside the build. The image is the offline base
(``thinkflow-base:bookworm``: Debian's python3, the same minor version as this environment) plus
this environment's own site-packages (the exact versions the tests ran with, torch's CPU build
included) and this checkout's code at ``/app``. ``prefect`` and ``thinkflow`` are on its PATH, so
the Docker worker's ``prefect flow-run execute`` runs a deployment's flow from ``/app``. The image
is labelled with a digest of the code and of the installed distributions: a second build with
nothing changed is skipped.
"""

from __future__ import annotations

import hashlib
import io
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

from tasks.stage_run import PROJECT_ROOT

PROJECT_IMAGE = "thinkflow-project:latest"
DOCKERFILE = Path(__file__).with_name("project.Dockerfile")
CODE = ("pyproject.toml", "prefect.yaml", "flows", "tasks", "sandbox", "storage", "configs")
SKIPPED_NAMES = ("__pycache__",)
LAUNCHERS = {
    "prefect": "import sys\nfrom prefect.cli import app\nsys.exit(app())\n",
    "thinkflow": "import sys\nfrom flows.cli import main\nsys.exit(main())\n",
}


class ProjectImageError(RuntimeError):
    pass


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def installed_here(entry: Path) -> bool:
    """Everything installed but this checkout's own editable install (its code goes in at /app)."""
    name = entry.name
    return not (name.startswith("__editable__") or name.startswith("thinkflow-") or name in SKIPPED_NAMES)


def code_files() -> list[Path]:
    files = []
    for name in CODE:
        path = PROJECT_ROOT / name
        if path.is_file():
            files.append(path)
        else:
            files += [
                p for p in sorted(path.rglob("*")) if p.is_file() and not any(part in SKIPPED_NAMES for part in p.parts)
            ]
    return files


def image_digest() -> str:
    digest = hashlib.sha256(DOCKERFILE.read_bytes())
    for path in code_files():
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + b"\0" + path.read_bytes())
    for entry in sorted(site_packages().iterdir()):
        if entry.name.endswith(".dist-info") and installed_here(entry):
            digest.update(entry.name.encode())
    return digest.hexdigest()[:16]


def write_context(archive: Path) -> None:
    def no_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if "__pycache__" in info.name.split("/") else info

    with tarfile.open(archive, "w") as tar:
        tar.add(DOCKERFILE, arcname="Dockerfile")
        for entry in sorted(site_packages().iterdir()):
            if installed_here(entry):
                tar.add(entry, arcname=f"site-packages/{entry.name}", filter=no_caches)
        for path in code_files():
            tar.add(path, arcname=f"app/{path.relative_to(PROJECT_ROOT)}")
        for name, body in LAUNCHERS.items():
            data = ("#!/usr/bin/python3\n" + body).encode()
            info = tarfile.TarInfo(f"bin/{name}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))


def build_project_image(client, base_image: str, tag: str = PROJECT_IMAGE) -> tuple[str, float]:
    """(what happened, seconds): the image built, or found current."""
    import docker

    started = time.monotonic()
    digest, stale = image_digest(), None
    try:
        existing = client.images.get(tag)
        if (existing.labels or {}).get("thinkflow.source") == digest:
            return f"{tag} already current", time.monotonic() - started
        stale = existing.id
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.get(base_image)
    except docker.errors.ImageNotFound:
        raise ProjectImageError(
            f"the project image needs the base image {base_image}: run `thinkflow sandbox setup-docker` first"
        ) from None
    base_python = (
        client.containers.run(
            base_image, ["python3", "-c", "import sys; print(sys.version_info[:2])"], remove=True, network_mode="none"
        )
        .decode()
        .strip()
    )
    if base_python != str(tuple(sys.version_info[:2])):
        raise ProjectImageError(
            f"the base image has Python {base_python}, this environment {tuple(sys.version_info[:2])}: "
            "its site-packages would not load there; build the environment with the base's Python"
        )
    with tempfile.TemporaryDirectory(prefix="thinkflow-image-") as scratch:
        archive = Path(scratch) / "context.tar"
        write_context(archive)
        with open(archive, "rb") as context:
            try:
                client.images.build(
                    fileobj=context,
                    custom_context=True,
                    tag=tag,
                    rm=True,
                    forcerm=True,
                    buildargs={"BASE_IMAGE": base_image},
                    labels={"thinkflow.source": digest},
                )
            except docker.errors.DockerException as exc:
                raise ProjectImageError(f"building {tag} failed: {exc}") from None
    if stale is not None:
        try:
            client.images.remove(stale)  # 2 GB each: an old build is not kept
        except docker.errors.APIError:
            pass  # a container still uses it
    return f"{tag} built ({digest})", time.monotonic() - started
