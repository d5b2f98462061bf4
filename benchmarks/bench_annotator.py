"""Annotator throughput: ``thinkflow bench annotator`` (or run this file).

Serves a local model with ``thinkflow serve-annotator``'s server on 127.0.0.1 and sends the same
requests through the ``openai`` annotator (reply cache off) at concurrency 1, 8 and 32, side by
side in one process. Prints requests/s for each and the ratio to concurrency 1: the server gathers
concurrent requests into one batched ``generate``, so concurrency buys throughput until the batch
is compute-bound.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tasks.annotator_server import AnnotatorServer
from tasks.annotators import OpenAIAnnotator
from tasks.models import build_model
from tasks.recipe import AnnotatorConfig


def requests_for(count: int) -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": f"Request {i}: in one short sentence, what does a hash map do?"}]
        for i in range(count)
    ]


def main(
    model: str = "tiny", requests: int = 96, max_tokens: int = 16, levels=(1, 8, 32), as_json: bool = False
) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_model(model, Path(folder) / model) if not Path(model).is_dir() else Path(model)
        conversations = requests_for(requests)
        rows = {}
        with AnnotatorServer(model_dir, model, max_batch=max(levels)) as server:
            warm = OpenAIAnnotator(AnnotatorConfig(kind="openai", model=model, base_url=server.url, cache=False))
            warm.complete(conversations[:4], max_tokens)
            for level in levels:
                annotator = OpenAIAnnotator(
                    AnnotatorConfig(kind="openai", model=model, base_url=server.url, cache=False, concurrency=level)
                )
                before = server.stats.as_dict()["batches"]
                started = time.perf_counter()
                replies = annotator.complete(conversations, max_tokens)
                seconds = time.perf_counter() - started
                assert len(replies) == requests
                batches = server.stats.as_dict()["batches"] - before
                rows[level] = {
                    "seconds": round(seconds, 2),
                    "requests_per_s": round(requests / seconds, 2),
                    "mean_batch": round(requests / batches, 1),
                }
    base = rows[levels[0]]["requests_per_s"]
    report = {
        "model": model,
        "requests": requests,
        "max_tokens": max_tokens,
        "rows": {str(k): {**v, "vs_concurrency_1": round(v["requests_per_s"] / base, 2)} for k, v in rows.items()},
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return report
    table = Table(title=f"openai annotator → local {model} server: {requests} requests, ≤{max_tokens} new tokens each")
    for column in ("concurrency", "seconds", "requests/s", "mean batch", f"vs concurrency {levels[0]}"):
        table.add_column(column, justify="right")
    for level, row in report["rows"].items():
        table.add_row(
            level,
            f"{row['seconds']:.2f}",
            f"{row['requests_per_s']:.1f}",
            f"{row['mean_batch']:.1f}",
            f"{row['vs_concurrency_1']:.2f}",
        )
    Console(width=140).print(table)
    return report


if __name__ == "__main__":
    main()
