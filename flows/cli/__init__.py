"""The ``thinkflow`` command line: one module per command group (run, problems, verify, lineage,
export, serve, bench, sandbox); this module puts them together and turns known user errors into one line."""

from __future__ import annotations

import os
import sys

import typer

import flows  # noqa: F401, I001  (first: sets the Prefect defaults before anything imports Prefect)
from flows.cli import bench, export, problems, run, serve, verify
from flows.cli.lineage import lineage_app
from flows.cli.output import report_user_error
from flows.cli.sandbox import sandbox_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="thinkflow: train code LLMs to think anywhere. Pipelines, problems, verification, lineage.",
)


@app.callback()
def options(
    debug: bool = typer.Option(False, "--debug", help="show the traceback behind an error (or THINKFLOW_DEBUG=1)"),
) -> None:
    if debug:
        os.environ["THINKFLOW_DEBUG"] = "1"


app.command()(run.demo)
app.command()(run.run)
app.command()(verify.verify)
app.command()(serve.serve)
app.command("serve-annotator")(serve.serve_annotator)
app.command()(export.export)
app.add_typer(problems.problems_app, name="problems")
app.add_typer(lineage_app, name="lineage")
app.add_typer(bench.bench_app, name="bench")
app.add_typer(sandbox_app, name="sandbox")


def main() -> None:
    """The console script: a known kind of bad input or unreachable service is one line on stderr
    and exit status 2; ``--debug`` (or THINKFLOW_DEBUG=1) re-raises it with its traceback."""
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - anything not a known user error keeps its traceback
        if os.environ.get("THINKFLOW_DEBUG") or not report_user_error(exc):
            raise
        sys.exit(2)


if __name__ == "__main__":
    main()
