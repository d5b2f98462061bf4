"""Artifacts (content-addressed files under THINKFLOW_HOME) and their lineage (DuckDB).

A leaf package: it imports nothing from flows/, tasks/ or sandbox/.
"""

from storage.artifacts import Artifact, ArtifactNotFound, ArtifactStore, default_home
from storage.lineage import LineageBusy, LineageLink, LineageNotFound, LineageStore

__all__ = [
    "Artifact",
    "ArtifactNotFound",
    "ArtifactStore",
    "default_home",
    "LineageBusy",
    "LineageLink",
    "LineageNotFound",
    "LineageStore",
]
