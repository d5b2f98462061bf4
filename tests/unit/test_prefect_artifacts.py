"""How a stage's result is laid out for the Prefect UI: keys, narrow tables, inline images."""

from flows.runtime.prefect_artifacts import artifact_key, narrow_tables, png_markdown


def test_keys_name_the_flow_and_the_stage_in_prefects_alphabet():
    assert artifact_key("think-anywhere", "evaluate rl") == "think-anywhere-evaluate-rl"
    assert (
        artifact_key("thinking-midtraining", "rlvr (code) from sft_think")
        == "thinking-midtraining-rlvr-code-from-sft-think"
    )


def test_a_wide_table_is_cut_into_groups_that_keep_the_label_column():
    header = "| model | " + " | ".join(f"c{i}" for i in range(9)) + " |"
    rule = "|" + "---|" * 10
    row = "| rl | " + " | ".join(str(i) for i in range(9)) + " |"
    text = narrow_tables(f"Title\n\n{header}\n{rule}\n{row}\n\nafter")
    tables = [line for line in text.splitlines() if line.startswith("|")]
    assert max(line.count("|") - 1 for line in tables) <= 6
    assert [line for line in tables if line.startswith("| rl |")] == [
        "| rl | 0 | 1 | 2 | 3 | 4 |",
        "| rl | 5 | 6 | 7 | 8 |",
    ]
    assert text.startswith("Title") and text.endswith("after")
    narrow = "| a | b |\n|---|---|\n| 1 | 2 |"
    assert narrow_tables(narrow) == narrow


def test_a_png_is_inline_not_a_file_link(tmp_path):
    png = tmp_path / "curve.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nxyz")
    assert png_markdown(png) == "![curve.png](data:image/png;base64,iVBORw0KGgp4eXo=)"


def test_a_comparison_stage_summarises_as_its_count_not_its_long_paired_metric_names():
    from flows.runtime.stage_log import key_metrics

    metrics = {"evaluations": 3, "paired/rlvr from sft_think_rlmt-vs-sft_think_rlmt/all/delta": 0.0, "paired/a/low": 0}
    assert key_metrics(metrics) == "evaluations=3"
    assert key_metrics({"models": 3, "paired/sft_think-vs-base/judge/delta": 0.1}) == "models=3"


def test_paired_metrics_are_left_to_the_paired_table_and_counted():
    from flows.runtime.prefect_artifacts import metrics_table

    lines = metrics_table({"evaluations": 3, "paired/rl/all/delta": 0.1, "paired/rl/all/low": 0.0})
    assert lines[2] == "| evaluations | 3 |" and len(lines) == 4
    assert lines[3] == "| paired/… | 2 paired differences: the paired table below |"
