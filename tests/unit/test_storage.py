import json

import pytest
from lineage_fixtures import record_plain_run

from storage import ArtifactNotFound, ArtifactStore, LineageStore
from storage.lineage import now


def commit(store, name, parents=(), content="x"):
    staged = store.new_staging_dir(name)
    (staged / "data.txt").write_text(content)
    return store.commit(staged, kind="dataset", name=name, parents=list(parents), config={"k": 1})


def test_same_content_and_parents_store_once(tmp_path):
    store = ArtifactStore(tmp_path)
    a = commit(store, "a")
    again = commit(store, "a")
    assert a.artifact_id == again.artifact_id and store.all_ids() == [a.artifact_id]
    assert commit(store, "a", content="y").artifact_id != a.artifact_id
    assert commit(store, "a", parents=[a.artifact_id]).artifact_id != a.artifact_id
    sidecar = json.loads((a.path / "artifact.json").read_text())
    assert sidecar["kind"] == "dataset" and sidecar["config"] == {"k": 1}
    assert list(store.staging_root.iterdir()) == []


def test_missing_artifact_is_named(tmp_path):
    with pytest.raises(ArtifactNotFound, match="dataset-nope"):
        ArtifactStore(tmp_path).path("dataset-nope")


def test_epoch_is_stable_and_changes_when_the_store_is_wiped(tmp_path):
    epoch = ArtifactStore(tmp_path / "h").epoch
    assert ArtifactStore(tmp_path / "h").epoch == epoch
    assert ArtifactStore(tmp_path / "other").epoch != epoch


def record(lineage, stage, inputs, outputs, status="completed"):
    return lineage.record_run(
        stage=stage,
        flow_run_id=None,
        params={"stage": stage},
        code_version="v",
        inputs=inputs,
        outputs={
            role: {"artifact_id": a.artifact_id, "kind": a.kind, "name": a.name, "uri": a.uri}
            for role, a in outputs.items()
        },
        metrics=[(a.artifact_id, "rows", 3.0, None) for a in outputs.values()] + [(None, "loss", 1.5, 1)],
        status=status,
        started_at=now(),
        ended_at=now(),
    )


def test_upstream_and_downstream_walk_the_chain(tmp_path):
    store, lineage = ArtifactStore(tmp_path), LineageStore(tmp_path / "l.duckdb")
    problems, model = commit(store, "problems"), commit(store, "base")
    data = commit(store, "coldstart", [problems.artifact_id])
    ckpt = commit(store, "sft", [data.artifact_id, model.artifact_id])
    record(lineage, "load", {}, {"problems": problems})
    record(lineage, "coldstart", {"problems": problems.artifact_id}, {"dataset": data})
    record(lineage, "sft", {"dataset": data.artifact_id, "model": model.artifact_id}, {"checkpoint": ckpt})
    up = {(l.artifact_id, l.stage, l.parent_id) for l in lineage.upstream(ckpt.artifact_id)}
    assert up == {
        (ckpt.artifact_id, "sft", data.artifact_id),
        (ckpt.artifact_id, "sft", model.artifact_id),
        (data.artifact_id, "coldstart", problems.artifact_id),
    }
    down = {(l.artifact_id, l.parent_id) for l in lineage.downstream(problems.artifact_id)}
    assert down == {(data.artifact_id, problems.artifact_id), (ckpt.artifact_id, data.artifact_id)}
    assert lineage.metrics_of(ckpt.artifact_id) == {"rows": 3.0}
    assert lineage.artifact(ckpt.artifact_id)["stage"] == "sft"
    assert lineage.artifact("dataset-missing") is None


def test_a_failed_run_is_recorded_without_outputs(tmp_path):
    lineage = LineageStore(tmp_path / "l.duckdb")
    record_plain_run(lineage, "sft", status="failed")
    assert [r["status"] for r in lineage.runs_of_stage("sft")] == ["failed"]
    assert lineage.counts()["artifacts"] == 0
