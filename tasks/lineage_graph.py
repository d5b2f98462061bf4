"""An artifact's lineage as a picture: what it was made from (left) and what was made from it
(right), one column per step, boxes coloured by kind, arrows labelled by the stage that ran.
Drawn with networkx + matplotlib (no graphviz binary needed) for ``thinkflow lineage graph`` and
for the link every flow run's summary carries.
"""

from __future__ import annotations

from pathlib import Path

from storage import LineageLink, LineageStore
from tasks.plots import pyplot

KIND_COLOURS = {"dataset": "#8fbcd4", "checkpoint": "#f2b880", "report": "#b5d99c", "plot": "#d8b5e0"}
MAX_NODES = 120  # beyond this the picture is unreadable; the far end of the walk is cut and the title says so


def graph_layers(
    root_id: str, upstream: list[LineageLink], downstream: list[LineageLink]
) -> tuple[dict[str, int], set]:
    """Column of each artifact (root 0, what it was made from to the left, what was made from it
    to the right) and the (parent, child, stage) arrows. Columns follow the longest path to or
    from the root, so every arrow points left to right."""
    import networkx as nx

    layers: dict[str, int] = {root_id: 0}
    made_from = nx.DiGraph((link.parent_id, link.artifact_id) for link in upstream)
    for artifact_id in reversed(list(nx.topological_sort(made_from))):  # children before parents
        children = [layers[c] for c in made_from.successors(artifact_id) if c in layers]
        if artifact_id != root_id and children:
            layers[artifact_id] = min(children) - 1
    made_into = nx.DiGraph((link.parent_id, link.artifact_id) for link in downstream)
    for artifact_id in nx.topological_sort(made_into):  # parents before children
        parents = [layers[p] for p in made_into.predecessors(artifact_id) if p in layers and layers[p] >= 0]
        if artifact_id != root_id and parents:
            layers[artifact_id] = max(parents) + 1
    arrows = {(link.parent_id, link.artifact_id, link.stage) for link in upstream + downstream}
    return layers, arrows


def trim(layers: dict[str, int], arrows: set, limit: int) -> tuple[dict[str, int], set, bool]:
    """Keep the columns nearest the root while at most ``limit`` artifacts fit."""
    if len(layers) <= limit:
        return layers, arrows, False
    kept: dict[str, int] = {}
    for distance in sorted({abs(layer) for layer in layers.values()}):
        ring = {a: layer for a, layer in layers.items() if abs(layer) == distance}
        if kept and len(kept) + len(ring) > limit:
            break
        kept.update(ring)
    return kept, {(p, c, s) for p, c, s in arrows if p in kept and c in kept}, True


def draw_lineage_graph(lineage: LineageStore, root_id: str, path: Path, max_depth: int = 64) -> Path:
    """Write the PNG of ``root_id``'s upstream and downstream graph to ``path``."""
    import networkx as nx

    layers, arrows = graph_layers(root_id, lineage.upstream(root_id, max_depth), lineage.downstream(root_id, max_depth))
    layers, arrows, trimmed = trim(layers, arrows, MAX_NODES)
    info = lineage.artifacts(sorted(layers))
    graph = nx.DiGraph()
    for artifact_id, layer in layers.items():
        graph.add_node(artifact_id, layer=layer)
    for parent, child, stage in arrows:
        graph.add_edge(parent, child, stage=stage)
    positions = nx.multipartite_layout(graph, subset_key="layer", align="vertical", scale=1.0)
    columns = len(set(layers.values()))
    rows = max(sum(1 for layer in layers.values() if layer == column) for column in set(layers.values()))
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(min(3 + 2.4 * columns, 40), min(max(4.0, 1.5 + 1.1 * rows), 40)))
    nx.draw_networkx_edges(
        graph, positions, ax=axes, arrows=True, arrowstyle="-|>", edge_color="#777777", node_size=2600
    )
    nx.draw_networkx_edge_labels(
        graph,
        positions,
        ax=axes,
        font_size=6,
        edge_labels={(p, c): s for p, c, s in arrows},
        rotate=False,
        label_pos=0.5,
    )
    for artifact_id, (x, y) in positions.items():
        known = info.get(artifact_id, {})
        name = known.get("name") or "?"
        label = f"{name}\n{artifact_id}"
        colour = KIND_COLOURS.get(known.get("kind"), "#dddddd")
        axes.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=6.5,
            zorder=3,
            bbox={
                "boxstyle": "round,pad=0.35",
                "facecolor": colour,
                "edgecolor": "#222222" if artifact_id == root_id else "#777777",
                "linewidth": 2.0 if artifact_id == root_id else 0.8,
            },
        )
    handles = [
        plt.Line2D(
            [], [], marker="s", linestyle="", markersize=9, markerfacecolor=c, markeredgecolor="#777777", label=k
        )
        for k, c in KIND_COLOURS.items()
    ]
    axes.legend(handles=handles, loc="lower left", fontsize=7, frameon=False)
    note = f" (cut to the {len(layers)} nearest artifacts)" if trimmed else ""
    axes.set_title(f"lineage of {root_id}: made from ← | → made into{note}", fontsize=9)
    axes.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
