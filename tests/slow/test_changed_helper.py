"""A helper the cold-start stage reaches only through another module, changed in a copy of the project: the
stages that reach it re-run, the others come from the cache (about a minute: the tiny pipeline re-run)."""

from pipeline_copies import copy_of_the_project, rerun_from, shard_stage, stage_ids


def test_a_changed_helper_reruns_the_stages_that_reach_it_and_only_those(tiny_runs, tmp_path):
    """Change a helper the cold-start stage reaches only through another module (the stage's task
    module is tasks/coldstart/build.py; the helper is in tasks/coldstart/insertion_sites.py) in a
    copy of the project, and run the tiny pipeline from that copy on the same store and Prefect
    results: the cold-start stage and everything after it re-run, every stage before it, and the
    base model's evaluation, come from the cache. No module list names insertion_sites."""
    copy = copy_of_the_project(tmp_path / "checkout")
    helper = copy / "tasks" / "coldstart" / "insertion_sites.py"
    source = helper.read_text()
    highest_first = "    scored.sort(reverse=True)\n"
    assert highest_first in source
    helper.write_text(
        source.replace(highest_first, "    scored.sort()  # the least certain positions last: a changed rule\n")
    )
    rerun = rerun_from(copy, tiny_runs)
    first = {s["label"]: s for s in tiny_runs["first"]["stages"]}
    cached = {s["label"]: s["cached"] for s in rerun["stages"]}
    names = list(cached)
    after_coldstart = names[names.index(shard_stage(rerun, "cold-start")["label"]) :]
    assert [n for n in names if cached[n]] == [
        n for n in names if n not in after_coldstart or n in ("eval set", "evaluate base")
    ]
    assert not any(cached[n] for n in after_coldstart if n not in ("eval set", "evaluate base"))
    assert (
        stage_ids(rerun, "cold-start set") != first["cold-start set"]["artifact_ids"]
    )  # the new rule chose other sites
    assert (
        stage_ids(rerun, "split") == first["split"]["artifact_ids"]
        and stage_ids(rerun, "evaluate base") == first["evaluate base"]["artifact_ids"]
    )
