"""Training overhead: ``thinkflow bench train`` (or run this file).

Runs the same SFT and the same GRPO (model, data, trainer settings, steps) two ways, side by side:
our stage (the Prefect task's function: StageRun, ``accelerate launch`` of tasks/training/worker.py,
checkpoints marked complete, metrics and curves into lineage) and a bare TRL script run with
``python``. Prints the trainer's own steps/s for each (the training loop), the wall time of the
whole run (process start, model load, saving), the overhead of ours on steps/s (target ≤ 5 %),
and the CPU seconds per step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BARE_SCRIPT = """
import json, sys, resource
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
import torch
spec = json.load(open(sys.argv[1]))
tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
rows = [json.loads(line) for line in open(spec["data_path"])]
common = dict(output_dir=spec["output_dir"], logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
              use_cpu=not torch.cuda.is_available(), **spec["trainer_args"])
if spec["kind"] == "sft":
    from trl import SFTConfig, SFTTrainer
    trainer = SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
else:
    from trl import GRPOConfig, GRPOTrainer
    from sandbox.config import SandboxConfig
    from tasks.training.rewards import reward_functions  # the same reward work as our stage
    tokenizer.padding_side = "left"
    terms = reward_functions(spec["reward"]["name"], spec["reward"], SandboxConfig())
    args = GRPOConfig(top_k=0, scale_rewards="none", reward_weights=[w for _, w in terms.values()], **common)
    trainer = GRPOTrainer(model=model, reward_funcs=[f for f, _ in terms.values()], args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
out = trainer.train()
print(json.dumps({"steps_per_second": out.metrics["train_steps_per_second"], "train_seconds": out.metrics["train_runtime"]}))
"""


def bare_run(kind: str, model_dir: Path, data_path: Path, trainer_args: dict, reward: dict, folder: Path) -> dict:
    from tasks.stage_run import PROJECT_ROOT

    spec = folder / f"bare-{kind}.json"
    spec.write_text(
        json.dumps(
            {
                "kind": kind,
                "model_dir": str(model_dir),
                "data_path": str(data_path),
                "output_dir": str(folder / f"bare-{kind}"),
                "trainer_args": trainer_args,
                "reward": reward,
            }
        )
    )
    script = folder / "bare.py"
    script.write_text(BARE_SCRIPT)
    started, cpu = time.monotonic(), os.times()
    done = subprocess.run(
        [sys.executable, str(script), str(spec)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(PROJECT_ROOT)},
    )
    if done.returncode:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    after = os.times()
    result.update(
        wall_seconds=time.monotonic() - started,
        cpu_seconds=after.children_user + after.children_system - cpu.children_user - cpu.children_system,
    )
    return result


def our_run(run_stage) -> dict:
    started, cpu = time.monotonic(), os.times()
    history = run_stage()
    after = os.times()
    final = next(entry for entry in reversed(history) if "train_steps_per_second" in entry)
    return {
        "steps_per_second": final["train_steps_per_second"],
        "train_seconds": final["train_runtime"],
        "wall_seconds": time.monotonic() - started,
        "cpu_seconds": after.children_user + after.children_system - cpu.children_user - cpu.children_system,
    }


def main(model: str = "tiny", steps: int = 20, as_json: bool = False) -> dict:
    from prefect.logging import disable_run_logger
    from trl import GRPOConfig, SFTConfig

    from storage import ArtifactStore
    from tasks.models import build_model
    from tasks.recipe import RLSection, SFTSection
    from tasks.records import write_jsonl
    from tasks.stage_run import StageRun
    from tasks.training.launch import run_worker
    from tasks.training.worker import trainer_args

    results = {}
    with tempfile.TemporaryDirectory() as scratch, disable_run_logger():
        folder = Path(scratch)
        os.environ["THINKFLOW_HOME"] = str(folder / "home")
        model_dir = build_model(model, folder / "model")
        sft_rows = [
            {
                "prompt": [{"role": "user", "content": f"Add {i} to x."}],
                "completion": [
                    {
                        "role": "assistant",
                        "content": f"<think>add {i}</think>\n```python\ndef f(x):\n    return x + {i}\n```",
                    }
                ],
            }
            for i in range(32)
        ]
        write_jsonl(folder / "sft.jsonl", sft_rows)
        problem = {"id": "add", "tests": {"kind": "call", "fn_name": "f", "inputs": [[1]], "outputs": [2]}}
        write_jsonl(
            folder / "rl.jsonl", [{"prompt": r["prompt"], "problem_json": json.dumps(problem)} for r in sft_rows]
        )
        sft = SFTSection(
            max_steps=steps, per_device_train_batch_size=4, max_length=256
        )  # checkpoints every 50 steps, as by default
        rl = RLSection(
            max_steps=max(2, steps // 4),
            num_generations=4,
            per_device_train_batch_size=8,
            max_completion_length=32,
        )
        store = ArtifactStore()
        model_id = store.commit(
            model_dir, kind="checkpoint", name=model, parents=[], config={}, metadata={}
        ).artifact_id

        def ours(kind: str, section, data: Path):
            def stage():
                with StageRun(f"bench_{kind}", inputs={"model": model_id}, params={"n": time.monotonic_ns()}) as run:
                    spec = {
                        "stage": kind,
                        "kind": kind,
                        "model_dir": str(run.input_path("model")),
                        "data_path": str(data),
                    }
                    if kind == "grpo":
                        spec.update(reward=section.reward.to_json(), sandbox={})
                    return run_worker(run, spec, section)[1]

            return stage

        for kind, section, data, config in (
            ("sft", sft, folder / "sft.jsonl", SFTConfig),
            ("grpo", rl, folder / "rl.jsonl", GRPOConfig),
        ):
            bare_args = trainer_args(section.to_json(), config)
            reward = section.reward.to_json() if kind == "grpo" else {}
            results[kind] = {
                "bare": bare_run(kind, store.path(model_id), data, bare_args, reward, folder),
                "ours": our_run(ours(kind, section, data)),
            }
            steps_done = bare_args["max_steps"]
            results[kind]["steps"] = steps_done
            results[kind]["overhead"] = (
                1 - results[kind]["ours"]["steps_per_second"] / results[kind]["bare"]["steps_per_second"]
            )
            results[kind]["cpu_seconds_per_step"] = results[kind]["ours"]["cpu_seconds"] / steps_done
    if as_json:
        print(json.dumps(results, indent=1))
        return results
    table = Table(
        title=f"training overhead, model {model} (ours: Prefect stage function + accelerate launch + checkpoints)"
    )
    for column in (
        "stage",
        "steps",
        "bare steps/s",
        "ours steps/s",
        "overhead (steps/s)",
        "bare wall s",
        "ours wall s",
        "ours CPU s/step",
    ):
        table.add_column(column)
    for kind, r in results.items():
        table.add_row(
            kind,
            str(r["steps"]),
            f"{r['bare']['steps_per_second']:.3f}",
            f"{r['ours']['steps_per_second']:.3f}",
            f"{100 * r['overhead']:.1f} %",
            f"{r['bare']['wall_seconds']:.1f}",
            f"{r['ours']['wall_seconds']:.1f}",
            f"{r['cpu_seconds_per_step']:.2f}",
        )
    Console(width=160).print(table)
    return results


if __name__ == "__main__":
    main(model=sys.argv[1] if len(sys.argv) > 1 else "tiny")
