"""The Thinking Mid-training corpus: chunks of raw text with thoughts interleaved, SFT and RL halves.

1. ``chunk_corpus``: documents (the embedded default is the documentation and source text that ship
   with Python: ``pydoc_data`` topics and stdlib modules) cut at line ends into chunks of at most
   ``chunk_tokens`` tokens of the policy's tokenizer; the chunks of a document concatenate back to it.
2. ``annotate_corpus_shard`` (one cached task per shard of ``shard_size`` chunks): the annotator
   writes the thoughts. Mode ``boundaries``: the chunk is cut into segments at line ends and the
   annotator writes one thought per boundary. Mode ``interleave``: the annotator copies the chunk
   with ``<think>`` blocks inserted, and its segments are whatever lies between them.
3. ``assemble_corpus``: every sample is verified (``concat(segments) == chunk`` exactly, thoughts
   non-empty; otherwise rejected and counted by reason), then split by hashed chunk id into an SFT
   half (``text``: ``x1 <think>t1</think> x2 …``) and an RL half, which stores every
   (prefix, thought, suffix) split: the model sees the prefix, writes a thought and the next segment.
   With ``eval_fraction`` > 0 a third part, held out of both, has the same form for the evaluation.
4. ``raw_corpus``: the SFT half's chunks without their thoughts, for the raw-SFT baseline arm.
"""

from __future__ import annotations

import json
import sysconfig
from collections import Counter
from pathlib import Path
from typing import Any

from tasks.recipe import AnnotatorConfig, CorpusConfig
from tasks.records import hashed_fraction, read_jsonl, write_jsonl
from tasks.stage_run import StageRun, shards_for, stage
from tasks.thinking import THINK_CLOSE, THINK_OPEN, clean_thought, render_interleaved, strip_thoughts

# -- pure functions --------------------------------------------------------------------------------


def corpus_documents(source: str, max_documents: int, seed: int = 0) -> list[tuple[str, str]]:
    """(name, text) documents, in a stable order."""
    import random

    if source == "python-stdlib":
        from pydoc_data.topics import topics

        documents = [(f"pydoc:{name}", text) for name, text in sorted(topics.items())]
        root = Path(sysconfig.get_paths()["stdlib"])
        documents += [
            (f"stdlib:{p.name}", p.read_text(errors="replace"))
            for p in sorted(root.glob("*.py"))
            if p.stat().st_size < 60_000
        ]
    elif source.startswith("files:"):
        pattern = source.split(":", 1)[1]
        paths = sorted(Path("/").glob(pattern.lstrip("/")) if pattern.startswith("/") else Path.cwd().glob(pattern))
        if not paths:
            raise FileNotFoundError(f"corpus source {source}: no file matches")
        documents = [(str(p), p.read_text(errors="replace")) for p in paths if p.is_file()]
    else:
        raise ValueError(f"unknown corpus source {source!r}; known: python-stdlib, files:GLOB")
    random.Random(seed).shuffle(documents)
    return [(name, text) for name, text in documents[:max_documents] if text.strip()]


def split_long_line(line: str, tokenizer, max_tokens: int) -> list[str]:
    encoded = tokenizer(line, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    cuts = [offsets[i][0] for i in range(max_tokens, len(offsets), max_tokens)]
    bounds = [0] + cuts + [len(line)]
    return [line[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def chunk_text(text: str, tokenizer, max_tokens: int) -> list[str]:
    """Chunks of at most ``max_tokens`` tokens, cut at line ends (a longer line is cut by tokens);
    ``"".join(chunks) == text``."""
    count = lambda s: len(tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    pieces = []
    for line in text.splitlines(keepends=True):
        pieces += [line] if count(line) <= max_tokens else split_long_line(line, tokenizer, max_tokens)
    chunks, current = [], ""
    for piece in pieces:
        if current and count(current + piece) > max_tokens:
            chunks.append(current)
            current = ""
        current += piece
    if current:
        chunks.append(current)
    return chunks


def segment_at_line_ends(chunk: str, segments: int) -> list[str]:
    """Up to ``segments`` consecutive pieces of the chunk, cut at line ends, about equal in lines."""
    lines = chunk.splitlines(keepends=True)
    count = min(segments, len(lines))
    bounds = [round(i * len(lines) / count) for i in range(count + 1)]
    return ["".join(lines[a:b]) for a, b in zip(bounds, bounds[1:])]


def thought_request(text_so_far: str) -> list[dict[str, str]]:
    return [
        {
            "role": "user",
            "content": (
                f'Here is the text so far:\n"""\n{text_so_far[-1500:]}\n"""\n'
                "In one short sentence, think about what the text will say next and why. Reply with the thought only."
            ),
        }
    ]


def interleave_request(chunk: str) -> list[dict[str, str]]:
    return [
        {
            "role": "user",
            "content": (
                "Copy the text below exactly, character for character, but insert two or three short thoughts, each as "
                f"{THINK_OPEN}thought{THINK_CLOSE}, where a reader would pause to think. Change nothing else.\n\n{chunk}"
            ),
        }
    ]


def segments_of_interleaved(text: str) -> tuple[list[str], list[str]]:
    """Split annotator output ``x1<think>t1</think>x2…`` into (segments, thoughts)."""
    segments, thoughts, rest = [], [], text
    while THINK_OPEN in rest:
        before, _, after = rest.partition(THINK_OPEN)
        thought, closed, rest = after.partition(THINK_CLOSE)
        if not closed:
            rest = before + THINK_OPEN + after
            break
        segments.append(before)
        thoughts.append(thought)
    segments.append(rest)
    return segments, thoughts


def verify_sample(chunk: str, segments: list[str], thoughts: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """(sample, None) when the segments concatenate back to the chunk exactly; else (None, reason)."""
    thoughts = [clean_thought(t, max_chars=300) for t in thoughts]
    if not thoughts:
        return None, "no_thought"
    if any(not t for t in thoughts):
        return None, "empty_thought"
    if "".join(segments) != chunk:
        return None, "concat_mismatch"
    text = render_interleaved(segments, thoughts)
    if strip_thoughts(text) != chunk:
        return None, "strip_mismatch"
    return {"segments": segments, "thoughts": thoughts, "text": text}, None


def in_rl_half(chunk_id: str, rl_fraction: float, seed: int) -> bool:
    return hashed_fraction(chunk_id, seed) < rl_fraction


def held_out(chunk_id: str, eval_fraction: float, seed: int) -> bool:
    """Kept out of both halves for the mid-training evaluation (its own hash, so the halves'
    split of the other chunks does not move when ``eval_fraction`` changes)."""
    return eval_fraction > 0 and hashed_fraction(f"held-out:{chunk_id}", seed) < eval_fraction


def rl_examples(chunk_id: str, sample: dict[str, Any]) -> list[dict[str, Any]]:
    """Every boundary k: the prefix (segments before it, no thoughts), the thought, the next segment."""
    segments, thoughts = sample["segments"], sample["thoughts"]
    return [
        {
            "chunk_id": chunk_id,
            "boundary": k,
            "prefix": "".join(segments[: k + 1]),
            "thought": thoughts[k],
            "suffix": segments[k + 1],
        }
        for k in range(len(thoughts))
    ]


def annotate_chunks(chunks: list[dict[str, Any]], annotator, cfg: CorpusConfig) -> list[dict[str, Any]]:
    """The annotator's raw output for each chunk: segments and thoughts, not yet verified."""
    if cfg.mode == "interleave":
        replies = annotator.complete(
            [interleave_request(c["text"]) for c in chunks],
            max_new_tokens=cfg.chunk_tokens + 3 * cfg.thought_max_new_tokens,
        )
        return [
            {"chunk_id": c["id"], **dict(zip(("segments", "thoughts"), segments_of_interleaved(r)))}
            for c, r in zip(chunks, replies)
        ]
    planned = [(c, segment_at_line_ends(c["text"], cfg.segments_per_chunk)) for c in chunks]
    requests = [
        (i, thought_request("".join(segs[: k + 1])))
        for i, (_, segs) in enumerate(planned)
        for k in range(len(segs) - 1)
    ]
    replies = annotator.complete([r for _, r in requests], max_new_tokens=cfg.thought_max_new_tokens)
    thoughts: list[list[str]] = [[] for _ in planned]
    for (index, _), reply in zip(requests, replies):
        thoughts[index].append(reply)
    return [{"chunk_id": c["id"], "segments": segs, "thoughts": t} for (c, segs), t in zip(planned, thoughts)]


# -- Prefect tasks ---------------------------------------------------------------------------------


@stage("chunk_corpus", inputs={"policy": "policy_id"})
def chunk_corpus(policy_id: str, corpus: CorpusConfig) -> str:
    """Documents → chunks.jsonl (id, document, text)."""
    from transformers import AutoTokenizer

    cfg = corpus
    with StageRun() as run:
        tokenizer = AutoTokenizer.from_pretrained(run.input_path("policy"))
        chunks = []
        for name, text in corpus_documents(cfg.source, cfg.max_documents, cfg.seed):
            for index, chunk in enumerate(chunk_text(text, tokenizer, cfg.chunk_tokens)):
                if chunk.strip():
                    chunks.append({"id": f"{name}#{index}", "document": name, "text": chunk})
        chunks = chunks[: cfg.limit_chunks] if cfg.limit_chunks else chunks
        staged = run.staging("chunks")
        write_jsonl(staged / "chunks.jsonl", chunks)
        shards = shards_for(len(chunks), cfg.shard_size)
        run.log.info("%d chunks of at most %d tokens in %d shards", len(chunks), cfg.chunk_tokens, shards)
        return run.output(
            "chunks",
            staged,
            kind="dataset",
            name="midtraining-chunks",
            metrics={"chunks": len(chunks), "shards": shards},
        )


def shard_count(chunks_id: str, corpus: CorpusConfig) -> int:
    """How many shards of ``shard_size`` chunks the chunks artifact makes."""
    from storage import ArtifactStore

    with open(ArtifactStore().path(chunks_id) / "chunks.jsonl") as handle:
        chunks = sum(1 for line in handle if line.strip())
    return shards_for(chunks, corpus.shard_size)


@stage(
    "annotate_corpus_shard",
    inputs={"chunks": "chunks_id", "annotator": "annotator_model_id"},
    retries=2,
    retry_delay_seconds=[5, 30],
)
def annotate_corpus_shard(
    chunks_id: str,
    shard: int,
    annotator_model_id: str | None,
    annotator: AnnotatorConfig,
    corpus: CorpusConfig,
    dtype: str,
) -> str:
    """One shard's annotations, cached on its own: an interrupted run redoes only unfinished shards.
    The annotator's reply settings (model, kind, temperature) are part of the cache key, its
    endpoint, concurrency and retries are not (``AnnotatorConfig.HOW``)."""
    from tasks.annotators import make_annotator

    cfg, annotator_cfg = corpus, annotator
    with StageRun() as run:
        chunks = read_jsonl(run.input_path("chunks") / "chunks.jsonl")[
            shard * cfg.shard_size : (shard + 1) * cfg.shard_size
        ]
        model_dir = run.input_path("annotator") if annotator_model_id else None
        writer = make_annotator(annotator_cfg, model_dir, run.store.home / "cache" / "annotator", dtype)
        annotated = annotate_chunks(chunks, writer, cfg)
        staged = run.staging(f"shard{shard}")
        write_jsonl(staged / "annotations.jsonl", annotated)
        run.log.info("shard %d: %d chunks annotated (%s)", shard, len(annotated), writer.calls)
        return run.output(
            "annotations",
            staged,
            kind="dataset",
            name=f"midtraining-annotations-{shard}",
            metrics={"chunks": len(annotated), "requests": writer.calls.requested},
        )


@stage("assemble_corpus", inputs={"chunks": "chunks_id", "shard": "shard_ids"})
def assemble_corpus(chunks_id: str, shard_ids: list[str], corpus: CorpusConfig) -> tuple[str, str, str]:
    """Verify every annotated chunk and split the accepted ones: (SFT half id, RL half id, held-out
    id; the held-out set is empty unless ``eval_fraction`` > 0)."""
    cfg = corpus
    with StageRun() as run:
        chunks = {c["id"]: c for c in read_jsonl(run.input_path("chunks") / "chunks.jsonl")}
        annotated = [
            row for i in range(len(shard_ids)) for row in read_jsonl(run.input_path(f"shard{i}") / "annotations.jsonl")
        ]
        missing = set(chunks) - {row["chunk_id"] for row in annotated}
        if missing or len(annotated) != len(chunks):
            raise RuntimeError(
                f"{len(chunks)} chunks but {len(annotated)} annotations; missing e.g. {sorted(missing)[:3]}"
            )
        rejected: Counter = Counter()
        sft, rl, held, thoughts = [], [], [], 0
        for row in annotated:
            chunk = chunks[row["chunk_id"]]
            sample, reason = verify_sample(chunk["text"], row["segments"], row["thoughts"])
            if sample is None:
                rejected[reason] += 1
                continue
            thoughts += len(sample["thoughts"])
            if held_out(chunk["id"], cfg.eval_fraction, cfg.seed):
                held += rl_examples(chunk["id"], sample)
            elif in_rl_half(chunk["id"], cfg.rl_fraction, cfg.seed):
                rl += rl_examples(chunk["id"], sample)
            else:
                sft.append({"chunk_id": chunk["id"], "text": sample["text"], "chunk": chunk["text"]})
        accepted = len(annotated) - sum(rejected.values())
        metrics = {
            "chunks": len(chunks),
            "accepted": accepted,
            "acceptance_rate": accepted / len(chunks) if chunks else 0.0,
            "thoughts_per_sample": thoughts / accepted if accepted else 0.0,
            "sft_samples": len(sft),
            "rl_examples": len(rl),
            "held_out_examples": len(held),
            **{f"rejected_{k}": n for k, n in sorted(rejected.items())},
        }
        run.log.info(
            "mid-training corpus: %d of %d chunks accepted, rejected %s", accepted, len(chunks), dict(rejected)
        )
        if not accepted:
            raise ValueError(f"no annotated chunk passed verification: rejected {dict(rejected)}")
        ids = []
        if cfg.eval_fraction > 0 and not held:
            raise ValueError(
                f"corpus.eval_fraction is {cfg.eval_fraction} but no accepted chunk was held out "
                f"({accepted} accepted): raise eval_fraction or the number of chunks"
            )
        for half, rows in (("sft", sft), ("rl", rl), ("held-out", held)):
            staged = run.staging(half)
            write_jsonl(staged / "train.jsonl", rows)
            (staged / "report.json").write_text(json.dumps(metrics, indent=1))
            ids.append(run.output(half, staged, kind="dataset", name=f"midtraining-{half}", metrics=metrics))
        return ids[0], ids[1], ids[2]


def raw_rows(sft_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The SFT half's chunks as they were, without their thoughts: the raw-SFT baseline's data."""
    return [{"chunk_id": row["chunk_id"], "text": row["chunk"]} for row in sft_rows]


@stage("raw_corpus", inputs={"sft_half": "sft_half_id"})
def raw_corpus(sft_half_id: str) -> str:
    """The same chunks as the SFT half, no thoughts: SFT on it is the paper's raw-SFT baseline."""
    with StageRun() as run:
        rows = raw_rows(read_jsonl(run.input_path("sft_half") / "train.jsonl"))
        tagged = sum(THINK_OPEN in row["text"] for row in rows)  # a chunk that itself contains the tag, as text
        staged = run.staging("raw")
        write_jsonl(staged / "train.jsonl", rows)
        run.log.info("raw corpus: %d chunks without thoughts (%d contain a think tag of their own)", len(rows), tagged)
        return run.output(
            "raw",
            staged,
            kind="dataset",
            name="midtraining-raw",
            metrics={"sft_samples": len(rows), "chunks_with_own_think_tag": tagged},
        )
