"""The Docker engine from a test's side: an engine with the sandbox image, or a skip naming what
is missing; what runs inside the sandbox's containers."""

import pytest

from sandbox.config import SandboxConfig, SandboxUnavailable
from sandbox.docker_backend import engine_client


def docker_or_skip(cfg: SandboxConfig):
    """An engine with the sandbox image, or a skip that names what this machine lacks: no engine,
    or an engine that cannot build the image (its base comes from a registry that is out of reach
    here; the offline build is ``thinkflow sandbox setup-docker``'s job)."""
    from sandbox.docker_backend import ensure_image

    try:
        client = engine_client(timeout_s=2)
    except SandboxUnavailable as exc:
        pytest.skip(
            f"no Docker engine here, so the container path cannot run (`make docker` sets one up, as root on Debian): {exc}"
        )
    try:
        ensure_image(client, cfg.docker_image)
    except SandboxUnavailable as exc:
        pytest.skip(
            f"a Docker engine answers but the sandbox image {cfg.docker_image} is not there and cannot be built here: "
            f"{str(exc)[:300]}"
        )
    return client
