"""The pipelines by name, each the entrypoint of its flow (as ``prefect.yaml`` names them).

A flow is looked up here when it is started by name (``thinkflow run NAME``, retraining a named
pipeline), so no pipeline module imports another one.
"""

from __future__ import annotations

PIPELINES = {
    "think-anywhere": "flows.think_anywhere:think_anywhere",
    "thinking-midtraining": "flows.thinking_midtraining:thinking_midtraining",
    "evaluate": "flows.evaluate:evaluate",
    "retrain": "flows.retrain:retrain",
}


class UnknownPipeline(ValueError):
    pass


def pipeline_flow(name: str):
    """The Prefect flow of pipeline ``name``."""
    from prefect.utilities.importtools import import_object

    if name not in PIPELINES:
        raise UnknownPipeline(f"unknown pipeline {name!r}; available: {', '.join(PIPELINES)}")
    return import_object(PIPELINES[name])
