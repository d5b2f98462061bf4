"""What the command line prints: one console for results, errors on stderr with exit status 2."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console(width=160)


def fail(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(2)
