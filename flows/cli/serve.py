"""``thinkflow serve`` (a local Prefect server, work pool, worker and deployments) and ``thinkflow serve-annotator`` (a local model behind an OpenAI-compatible endpoint)."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.output import console, fail


def serve(
    port: int = typer.Option(4200, help="the Prefect server's port on 127.0.0.1"),
    deploy: bool = typer.Option(True, "--deploy/--no-deploy", help="register prefect.yaml's deployments"),
    pool: str = typer.Option(
        "process", "--pool", help="process | docker (flow runs in containers of the project image: `make docker` first)"
    ),
) -> None:
    """A local Prefect server, the process work pool + worker, the gpu concurrency limit and the
    deployments, until Ctrl-C (which stops the worker, then the server)."""
    from flows.runtime.local_server import ServeError, serve_until_stopped

    try:
        serve_until_stopped(port, deploy, pool)
    except ServeError as exc:
        fail(str(exc))


def serve_annotator(
    model: str = typer.Argument(..., help="a model folder, or a name the registry builds: tiny, smollm2-135m-instruct"),
    port: int = typer.Option(8000, "--port"),
    host: str = typer.Option("127.0.0.1", "--host"),
    max_batch: int = typer.Option(32, "--max-batch", min=1, help="requests gathered into one generate call"),
    fail_every: int = typer.Option(0, "--fail-every", min=0, help="answer every Nth request with HTTP 500 (testing)"),
    stall_every: int = typer.Option(
        0, "--stall-every", min=0, help="hold every Nth request --stall-s seconds (testing)"
    ),
    stall_s: float = typer.Option(30.0, "--stall-s"),
) -> None:
    """Serve a local model behind an OpenAI-compatible /v1/chat/completions endpoint (the openai annotator's peer)."""
    from storage import ArtifactStore
    from tasks.annotator_server import AnnotatorServer, Faults
    from tasks.models import build_model

    folder = Path(model)
    if not folder.is_dir():
        folder = ArtifactStore().home / "served-models" / model
        if not (folder / "config.json").exists():
            try:
                build_model(model, folder)
            except (ValueError, FileNotFoundError) as exc:
                fail(f"{model}: neither a model folder nor a model the registry can build ({exc})")
    server = AnnotatorServer(
        folder,
        model_name=model,
        host=host,
        port=port,
        max_batch=max_batch,
        faults=Faults(fail_every=fail_every, stall_every=stall_every, stall_s=stall_s),
    )
    console.print(f"serving {model} at {server.url} (POST /chat/completions, GET /models, GET {server.url[:-3]}/stats)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
