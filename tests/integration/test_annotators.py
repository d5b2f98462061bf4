"""The openai annotator against a real HTTP server on 127.0.0.1 serving the tiny model, with
injected 500s and timeouts; the hf annotator; the reply cache."""

import pytest

from tasks.annotator_server import AnnotatorServer, Faults
from tasks.annotators import AnnotatorError, HFAnnotator, OpenAIAnnotator, make_annotator
from tasks.recipe import AnnotatorConfig

CONVERSATIONS = [[{"role": "user", "content": f"Write the number {i} in words."}] for i in range(24)]


def openai_config(url: str, **settings) -> AnnotatorConfig:
    base = {
        "kind": "openai",
        "model": "tiny",
        "base_url": url,
        "concurrency": 8,
        "backoff_s": 0.01,
        "timeout_s": 5.0,
        "cache": False,
    }
    return AnnotatorConfig(**{**base, **settings})


@pytest.fixture(scope="module")
def clean_replies(tiny_model_dir):
    """What the served model answers with no faults: the reference for every faulty run."""
    with AnnotatorServer(tiny_model_dir, "tiny") as server:
        annotator = OpenAIAnnotator(openai_config(server.url))
        replies = annotator.complete(CONVERSATIONS, max_new_tokens=6)
        assert server.stats.as_dict()["served"] == len(CONVERSATIONS)
    return replies


def test_the_served_model_answers_like_the_hf_annotator(tiny_model_dir, clean_replies):
    local = HFAnnotator(tiny_model_dir, AnnotatorConfig(batch_size=8))
    assert local.complete(CONVERSATIONS, max_new_tokens=6) == clean_replies  # greedy: the same text either way
    assert len(set(clean_replies)) > 1 and local.calls.requested == len(CONVERSATIONS)


def test_injected_500s_and_timeouts_lose_and_duplicate_nothing(tiny_model_dir, clean_replies):
    faults = Faults(fail_every=3, stall_every=7, stall_s=3.0)
    with AnnotatorServer(tiny_model_dir, "tiny", faults=faults) as server:
        annotator = OpenAIAnnotator(openai_config(server.url, timeout_s=1.0))
        replies = annotator.complete(CONVERSATIONS, max_new_tokens=6)
        stats = server.stats.as_dict()
    assert replies == clean_replies  # every row, once, in order
    assert stats["failed"] >= len(CONVERSATIONS) // 3 and stats["stalled"] >= 3  # the faults really happened
    calls = annotator.calls
    assert calls.retries == calls.server_errors + calls.timeouts  # each failed attempt was retried, nothing else was
    assert calls.server_errors == stats["failed"]  # every injected 500, seen as one
    # every stalled request timed out (on a loaded machine a reply the server did not stall can be late too)
    assert calls.timeouts >= stats["stalled"]
    assert annotator.calls.requested == stats["received"] == len(CONVERSATIONS) + annotator.calls.retries


def test_a_request_that_keeps_failing_stops_the_stage_naming_it(tiny_model_dir):
    with AnnotatorServer(tiny_model_dir, "tiny", faults=Faults(fail_every=1)) as server:
        annotator = OpenAIAnnotator(openai_config(server.url, max_retries=2))
        with pytest.raises(AnnotatorError, match=r"/v1: request [0-9a-f]{12} failed 3 times; last: HTTP 500"):
            annotator.complete(CONVERSATIONS[:1], max_new_tokens=4)
        assert server.stats.as_dict()["received"] == 3


def test_a_refused_request_is_not_retried(tiny_model_dir):
    with AnnotatorServer(tiny_model_dir, "tiny") as server:
        annotator = OpenAIAnnotator(openai_config(server.url.replace("/v1", "/nope")))
        with pytest.raises(AnnotatorError, match="refused with HTTP 404"):
            annotator.complete(CONVERSATIONS[:1], max_new_tokens=4)
        assert annotator.calls.retries == 0


def test_cached_replies_make_a_rerun_free(tiny_model_dir, clean_replies, tmp_path):
    with AnnotatorServer(tiny_model_dir, "tiny") as server:
        first = make_annotator(openai_config(server.url, cache=True), None, tmp_path)
        assert first.complete(CONVERSATIONS, max_new_tokens=6) == clean_replies
        again = make_annotator(openai_config(server.url, cache=True), None, tmp_path)
        assert again.complete(CONVERSATIONS, max_new_tokens=6) == clean_replies
        assert again.calls.cached == len(CONVERSATIONS) and again.calls.requested == 0
        assert server.stats.as_dict()["received"] == len(CONVERSATIONS)
        other = make_annotator(openai_config(server.url, cache=True), None, tmp_path)
        other.complete(CONVERSATIONS[:2], max_new_tokens=7)  # another request (max tokens) is not a cache hit
        assert other.calls.requested == 2


def test_retry_after_is_honoured_and_backoff_grows(tiny_model_dir):
    annotator = OpenAIAnnotator(openai_config("http://127.0.0.1:9/v1", backoff_s=1.0))
    assert annotator.backoff(1, "2.5") == 2.5 and annotator.backoff(1, "600") == 60.0
    waits = [annotator.backoff(attempt, None) for attempt in (1, 2, 3, 4)]
    assert 0.5 <= waits[0] <= 1.5 and 4.0 <= waits[3] <= 12.0


def test_vllm_annotator_says_what_it_needs(tiny_model_dir):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here; its path is exercised on a GPU machine")
    with pytest.raises(AnnotatorError, match="needs vLLM and a GPU"):
        make_annotator(AnnotatorConfig(kind="vllm"), tiny_model_dir, None)
