"""What the command line prints: one console for results, errors on stderr with exit status 2."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

console = Console(width=160)

# Errors that mean "fix your input or start a service", by (module, class); looked up only in the
# modules already imported, so this list imports nothing (``thinkflow verify`` stays Prefect-free).
USER_ERRORS = (
    ("tasks.sections", "RecipeError"),  # defined there, re-exported by tasks.recipe
    ("tasks.records", "ProblemFormatError"),
    ("sandbox.config", "SandboxUnavailable"),
    ("storage.lineage", "LineageBusy"),
    ("storage.lineage", "LineageNotFound"),
    ("storage.artifacts", "ArtifactNotFound"),
    ("flows.runtime.prefect_api", "PrefectUnavailable"),
    ("flows.runtime.local_server", "ServeError"),
    ("flows.runtime.pipelines", "UnknownPipeline"),
    ("builtins", "FileNotFoundError"),
)


def fail(message: str) -> None:
    """One line on stderr and exit status 2; under ``--debug`` (THINKFLOW_DEBUG=1), called while
    handling an exception, that exception is re-raised with its traceback after the line."""
    print_error(message)
    if os.environ.get("THINKFLOW_DEBUG") and sys.exc_info()[1] is not None:
        raise
    raise typer.Exit(2)


def print_error(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}", markup=True, highlight=False)


def print_note(message: str) -> None:
    """A line for the person waiting, on stderr (stdout carries results, e.g. ``--json``)."""
    Console(stderr=True, soft_wrap=True).print(message, markup=False, highlight=False)


def is_user_error(exc: BaseException) -> bool:
    classes = [getattr(sys.modules.get(module), name, None) for module, name in USER_ERRORS]
    return any(isinstance(exc, cls) for cls in classes if isinstance(cls, type))


def report_user_error(exc: BaseException) -> bool:
    """Print a known user error as one line (what, where, how to fix); False for anything else."""
    if not is_user_error(exc):
        return False
    message = " ".join(str(exc).split()) or type(exc).__name__
    print_error(f"{message} (--debug shows the traceback)")
    return True
