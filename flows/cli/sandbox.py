"""``thinkflow sandbox …``: the Docker engine and the sandbox image, set up offline and stopped."""

from __future__ import annotations

import typer

from flows.cli.output import console, fail

sandbox_app = typer.Typer(no_args_is_help=True, help="The sandbox's Docker engine and image (offline).")


@sandbox_app.command("setup-docker")
def setup_docker_command(
    image: str = typer.Option(
        "thinkflow-sandbox:latest", "--image", help="tag of the sandbox image (sandbox.docker_image)"
    ),
    project_image: bool = typer.Option(
        False, "--project-image", help="also the project image for the Docker work pool (~1 min, 2 GB)"
    ),
) -> None:
    """Install and start a Docker engine if none answers (root, Debian), build the base image with
    debootstrap and the sandbox image from it; steps already done are skipped."""
    from sandbox.docker_backend import BASE_IMAGE, engine_client
    from sandbox.docker_setup import setup_docker

    report = setup_docker(image)
    if project_image:
        from flows.runtime.project_image import ProjectImageError, build_project_image

        try:
            outcome, seconds = build_project_image(engine_client(timeout_s=600), BASE_IMAGE)
        except ProjectImageError as exc:
            fail(str(exc))
        report.steps.append(("project image", outcome, round(seconds, 1)))
    for step, outcome, seconds in report.steps:
        console.print(f"{step:<14} {seconds:>6.1f} s  {outcome}", markup=False, highlight=False)
    console.print(
        "ready: --backend docker (verify) or --set sandbox.backend=docker (run)", markup=False, highlight=False
    )


@sandbox_app.command("stop-docker")
def stop_docker_command() -> None:
    """Stop the sandbox's containers, and the engine if setup-docker started it (nothing else)."""
    from sandbox.docker_setup import stop_docker

    stopped = stop_docker()
    console.print(
        "stopped: " + (", ".join(stopped) if stopped else "nothing (setup-docker started nothing still running)"),
        markup=False,
        highlight=False,
    )
