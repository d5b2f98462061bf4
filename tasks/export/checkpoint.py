"""A checkpoint artifact as a self-contained Hugging Face model folder with a model card.

The folder holds the weights (safetensors; a LoRA adapter is already merged in by the training
worker), the tokenizer with its chat template and the think tags, the generation config, and
``README.md``: YAML front matter written with ``huggingface_hub``'s card classes (``base_model``,
``datasets``, ``tags``, ``model-index`` with every evaluation of the checkpoint), then the recipe
sections that made it, its reward and weights, its lineage back to the source files, the think
format and how to load and prompt it. ``thinkflow.json`` holds the same provenance as data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from storage import ArtifactStore, LineageStore
from tasks.export.folder import move_into_place, staging_beside
from tasks.export.provenance import Provenance, gather, lineage_lines, provenance_record, settings_block
from tasks.sections import RecipeError
from tasks.thinking import INLINE_CLOSE, INLINE_OPEN, THINK_CLOSE, THINK_OPEN, THINK_TAGS

SIDECAR_FILES = ("artifact.json",)
STAGE_TAGS = {
    "sft": "sft",
    "grpo": "grpo",
    "midtraining_rl": "grpo",
    "math_rl": "grpo",
    "add_think_tokens": "think-tokens",
}


def think_tag_ids(tokenizer) -> dict[str, list[int]]:
    """Each think tag's token ids; raises when a tag does not decode back to itself."""
    ids = {}
    for tag in THINK_TAGS:
        encoded = tokenizer(tag, add_special_tokens=False)["input_ids"]
        if tokenizer.decode(encoded) != tag:
            raise RecipeError(
                f"the tokenizer does not round-trip {tag!r} (ids {encoded} decode to {tokenizer.decode(encoded)!r})"
            )
        ids[tag] = encoded
    return ids


def copy_model_files(source: Path, staged: Path) -> None:
    for path in sorted(source.iterdir()):
        if path.name in SIDECAR_FILES or path.is_dir():
            continue
        shutil.copy2(path, staged / path.name)
    if (staged / "adapter_config.json").exists() and not any(staged.glob("*.safetensors")):
        raise RecipeError(
            f"{source} holds a LoRA adapter without merged weights; export the checkpoint the stage saved (merged)"
        )
    if not (staged / "generation_config.json").exists():
        from transformers import AutoConfig, GenerationConfig

        GenerationConfig.from_model_config(AutoConfig.from_pretrained(staged)).save_pretrained(staged)


def eval_results(provenance: Provenance) -> list:
    """One ``model-index`` entry per (evaluation, benchmark): pass@1 with its problems and decoding settings."""
    from huggingface_hub import EvalResult

    results = []
    for evaluation in provenance.evaluations:
        generation = evaluation["generation"]
        decoding = (
            "greedy"
            if generation["temperature"] == 0
            else f"temperature {generation['temperature']}, top_p {generation['top_p']}"
        )
        for benchmark, scores in evaluation["report"]["pass_at_k"].items():
            if benchmark == "all":
                continue
            for key, value in scores.items():
                if not key.startswith("pass@") or key.endswith("_ci"):
                    continue
                low, high = scores.get(f"{key}_ci", [None, None])
                results.append(
                    EvalResult(
                        task_type="text-generation",
                        task_name="code generation",
                        dataset_type=benchmark,
                        dataset_name=benchmark,
                        metric_type=key,
                        metric_name=f"{key} ({evaluation['variant']})",
                        metric_value=value,
                        metric_args={
                            "problems": scores["problems"],
                            "samples_per_problem": generation["samples"],
                            "decoding": decoding,
                            "max_new_tokens": generation["max_new_tokens"],
                            "prompt_variant": evaluation["variant"],
                            "interval_95": [low, high],
                            "report": evaluation["report_id"],
                        },
                    )
                )
    return results


def card_tags(provenance: Provenance) -> list[str]:
    tags = ["thinkflow", "code", "reasoning", "trl"]
    tags += [STAGE_TAGS[run["stage"]] for run in provenance.training_runs() if run["stage"] in STAGE_TAGS]
    if provenance.runs_of("coldstart"):
        tags.append("think-anywhere")
    if provenance.runs_of("chunk_corpus"):
        tags.append("thinking-midtraining")
    return list(dict.fromkeys(tags))


def system_prompt_of(provenance: Provenance) -> str | None:
    for run in provenance.training_runs():
        if run["params"].get("system_prompt"):
            return run["params"]["system_prompt"]
    return next(
        (
            e["report"]["variant"]["system_prompt"]
            for e in provenance.evaluations
            if e["report"]["variant"]["system_prompt"]
        ),
        None,
    )


def card_body(provenance: Provenance, tag_ids: dict[str, list[int]], special: bool) -> str:
    artifact = provenance.artifact
    lines = [
        f"# {artifact['name']} — `{provenance.artifact_id}`",
        "",
        f"A checkpoint trained by thinkflow from `{', '.join(provenance.base_models()) or 'unknown'}`; "
        "every number and setting below is read from thinkflow's lineage store, not written by hand.",
        "",
    ]
    lines += [
        "## How to load and prompt it",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        "tokenizer = AutoTokenizer.from_pretrained(FOLDER)",
        "model = AutoModelForCausalLM.from_pretrained(FOLDER)",
        'messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROBLEM}]',
        'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)',
        "reply = model.generate(**inputs, max_new_tokens=512, do_sample=False)",
        "```",
        "",
    ]
    system = system_prompt_of(provenance)
    if system:
        lines += ["The system prompt it was trained and evaluated with (`SYSTEM` above):", "", f"> {system}", ""]
    lines += [
        "## The think format",
        "",
        f"A reply opens with an upfront thought `{THINK_OPEN}…{THINK_CLOSE}`, then one ```` ```python ```` block in which "
        f"short inline thoughts `{INLINE_OPEN}…{INLINE_CLOSE}` sit inside statements, where the code needs care. "
        "Remove every inline block before running the code (thinkflow's `tasks.thinking.strip_inline_thoughts`); the code "
        "must run without them.",
        "",
        "| tag | token ids |",
        "|---|---|",
    ] + [f"| `{tag}` | {ids} |" for tag, ids in tag_ids.items()]
    lines += [
        "",
        "The tags are special tokens of their own (Think-Anywhere*)."
        if special
        else "The tags are plain text, several tokens each, as in the base tokenizer.",
        "",
    ]
    if provenance.evaluations:
        lines += [
            "## Evaluation",
            "",
            "| benchmark | variant | metric | value | 95 % interval | problems | decoding | report |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for evaluation in provenance.evaluations:
            generation = evaluation["generation"]
            for benchmark, scores in evaluation["report"]["pass_at_k"].items():
                if benchmark == "all":
                    continue
                low, high = scores.get("pass@1_ci", [float("nan"), float("nan")])
                lines.append(
                    f"| {benchmark} | {evaluation['variant']} | pass@1 | {scores['pass@1']:.3f} | [{low:.3f}, {high:.3f}] | "
                    f"{scores['problems']} | T={generation['temperature']}, {generation['max_new_tokens']} new tokens | "
                    f"`{evaluation['report_id']}` |"
                )
        lines.append("")
    lines += training_sections(provenance)
    lines += [
        "## Lineage",
        "",
        "Each artifact, what it was made from and by which stage (`thinkflow lineage show ID` walks it):",
        "",
    ]
    lines += lineage_lines(provenance) + [""]
    lines += source_lines(provenance)
    return "\n".join(lines)


def training_sections(provenance: Provenance) -> list[str]:
    """Each training stage upstream: its settings as the recipe wrote them, and the reward with its weights."""
    lines = []
    for run in provenance.training_runs():
        params = dict(run["params"])
        lines += [f"## Training: `{run['stage']}` (run `{run['run_id']}`)", ""]
        section = params.pop("rl", None) or params
        reward = section.get("reward") if isinstance(section, dict) else None
        if reward:
            weights = ", ".join(f"{weight:g}·{term}" for term, weight in (reward.get("weights") or {}).items())
            lines += [
                f"Reward `{reward['name']}`"
                + (
                    f": {weights}"
                    if weights and reward["name"] == "think_anywhere"
                    else f" (judge {reward.get('judge')})"
                )
                + ".",
                "",
            ]
        metrics = {
            k: v
            for k, v in run["metrics"].items()
            if k in ("steps", "loss_first", "loss_last", "reward_first", "reward_last", "prompts", "seconds")
        }
        if metrics:
            lines += [", ".join(f"{k} {v:.4g}" for k, v in metrics.items()), ""]
        lines += ["<details><summary>settings</summary>", ""] + settings_block(run["params"]) + ["", "</details>", ""]
    return lines


def source_lines(provenance: Provenance) -> list[str]:
    lines = ["## Sources", ""]
    for source in provenance.problem_sources():
        lines.append(
            f"- problems `{source['name']}`" + (f", data fingerprint `{source['data']}`" if source["data"] else "")
        )
    for corpus in provenance.corpus_sources():
        lines.append(
            f"- corpus `{corpus.get('source')}` ({corpus.get('max_documents')} documents, chunks of "
            f"{corpus.get('chunk_tokens')} tokens)"
        )
    for model in provenance.base_models():
        lines.append(f"- base model `{model}`")
    return lines + [""]


def model_card(provenance: Provenance, tag_ids: dict[str, list[int]], special: bool):
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        base_model=provenance.hub_base_model(),
        datasets=provenance.hub_datasets() or None,
        tags=card_tags(provenance),
        library_name="transformers",
        pipeline_tag="text-generation",
        model_name=provenance.artifact["name"] if provenance.evaluations else None,
        eval_results=eval_results(provenance) or None,
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_body(provenance, tag_ids, special)}\n")


def export_checkpoint(artifact_id: str, out_dir: Path, store: ArtifactStore | None = None) -> dict[str, Any]:
    """Write the checkpoint as a Hugging Face folder at ``out_dir``; what was written."""
    from transformers import AutoTokenizer

    store = store or ArtifactStore()
    lineage = LineageStore(store.lineage_path)
    source = store.path(artifact_id)
    if store.get(artifact_id).kind != "checkpoint":
        raise RecipeError(f"{artifact_id} is a {store.get(artifact_id).kind}, not a checkpoint")
    provenance = gather(store, lineage, artifact_id)
    staged = staging_beside(out_dir)
    try:
        copy_model_files(source, staged)
        tokenizer = AutoTokenizer.from_pretrained(staged)
        tag_ids = think_tag_ids(tokenizer)
        special = all(len(ids) == 1 for ids in tag_ids.values())
        model_card(provenance, tag_ids, special).save(staged / "README.md")
        (staged / "thinkflow.json").write_text(
            json.dumps(provenance_record(provenance, tag_ids), indent=1, default=str)
        )
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    folder = move_into_place(staged, out_dir)
    return {
        "artifact_id": artifact_id,
        "folder": str(folder),
        "files": sorted(p.name for p in folder.iterdir()),
        "evaluations": len(provenance.evaluations),
        "think_tag_ids": tag_ids,
    }


def push_to_hub(folder: Path, repo_id: str, repo_type: str = "model", private: bool = True) -> str:
    """Upload an exported folder to the Hub (network and a token: HF_TOKEN or `hf auth login`); the repo's URL.
    Not exercised here (no Hub is reachable): two calls of huggingface_hub's own API."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type=repo_type,
        commit_message=f"thinkflow export of {json.loads((folder / 'thinkflow.json').read_text())['artifact_id']}",
    )
    return str(url)
