"""The base of every recipe section, and the error a bad recipe raises (tasks/recipe.py owns the sections)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class RecipeError(ValueError):
    pass


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    HOW: ClassVar[frozenset[str]] = frozenset()  # settings that say where or how fast, not what: never in a cache key

    def to_json(self) -> dict[str, Any]:
        """The section as plain JSON: what lineage records and a worker process reads."""
        return self.model_dump(mode="json")

    def cache_key(self) -> dict[str, Any]:
        """What of this section decides a stage's result."""
        return self.model_dump(mode="json", exclude=set(self.HOW))
