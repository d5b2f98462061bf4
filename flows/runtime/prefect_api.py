"""Reach a Prefect API before a flow starts: the server in ``PREFECT_API_URL``, or Prefect's
ephemeral server started here, with a wait that fits a cold database and a one-line error when it
cannot start (instead of Prefect's traceback from inside the first flow call)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("thinkflow.prefect")


class PrefectUnavailable(RuntimeError):
    pass


def startup_timeout_s() -> int:
    raw = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "")
    try:
        return max(1, int(float(raw)))
    except ValueError:
        raise PrefectUnavailable(
            f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS={raw!r} is not a number of seconds"
        ) from None


def ephemeral_database(home: Path, connection_url: str | None) -> Path | None:
    """The SQLite file the ephemeral server uses, where it is the default one under PREFECT_HOME."""
    if connection_url and not connection_url.startswith("sqlite"):
        return None
    if connection_url:
        return Path(connection_url.split(":///", 1)[-1]).expanduser()
    return home / "prefect.db"


def ensure_prefect_api(say=print) -> str:
    """The API URL flows will use; starts the ephemeral server (once per process) when none is set."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url:
        return settings.api.url
    server = SubprocessASGIServer()
    if server.running:
        return server.api_url
    home = Path(settings.home)
    if not home.exists() and not home.parent.is_dir():  # the server would fail after the whole startup timeout
        raise PrefectUnavailable(
            f"PREFECT_HOME={home} cannot be created: its folder {home.parent} does not exist "
            "(a HOME that is not a folder?); fix: create it, or set PREFECT_HOME to a folder that can be"
        )
    timeout = startup_timeout_s()
    connection = settings.server.database.connection_url
    database = ephemeral_database(home, connection.get_secret_value() if connection else None)
    if database is not None and not database.exists():
        say(
            f"starting Prefect's local server; first start under PREFECT_HOME={settings.home}: "
            f"it creates its database first (15-30 s on 2 cores; waiting up to {timeout} s)"
        )
    started = time.monotonic()
    try:
        server.start(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - Prefect raises a bare RuntimeError carrying the server's whole output
        first = str(exc).split(" stdout:", 1)[0].strip()
        raise PrefectUnavailable(
            f"Prefect's local server did not start within {timeout} s ({first}); fix: raise "
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or run `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        ) from exc
    log.info("Prefect's local server answered after %.1f s", time.monotonic() - started)
    return server.api_url
