"""Prefect flows, one module per pipeline, and their runtime.

Importing the package sets the Prefect defaults every entry point needs (the CLI, tests, a
deployment's flow run) before Prefect itself is imported; a value already in the environment wins:

- analytics off: its telemetry task otherwise hits "database is locked" on the ephemeral server;
- a startup wait that fits a cold database: a fresh ``PREFECT_HOME`` makes the ephemeral server
  create and migrate its SQLite file first, 31-32 s on 2 idle cores (more on a busy machine),
  while Prefect waits 20 s by default.
"""

import os

EPHEMERAL_STARTUP_TIMEOUT_S = 240
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(EPHEMERAL_STARTUP_TIMEOUT_S),
    "TOKENIZERS_PARALLELISM": "false",
}
for _name, _value in PREFECT_DEFAULTS.items():
    os.environ.setdefault(_name, _value)
