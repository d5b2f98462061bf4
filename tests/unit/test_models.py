from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

from tasks.models import ModelNotFound, build_model, build_tiny_tokenizer, parameter_count
from tasks.thinking import THINK_TAGS

SAMPLE = "def f(x):\n    return <thinkanywhere>add one</thinkanywhere>x + 1  # héllo\n<think>plan</think>\t"


def test_tiny_tokenizer_ids_survive_save_and_reload(tmp_path):
    built = build_tiny_tokenizer(tmp_path)
    Qwen2Config().save_pretrained(tmp_path)  # as in a model dir: transformers then rebuilds Qwen2's pre-tokenizer
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(reloaded).__name__ == "Qwen2Tokenizer"
    assert built(SAMPLE)["input_ids"] == reloaded(SAMPLE)["input_ids"]
    assert reloaded.decode(reloaded(SAMPLE)["input_ids"]) == SAMPLE


def test_tiny_model_has_think_tags_chatml_and_about_a_third_of_a_million_parameters(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for tag in THINK_TAGS:
        assert len(tokenizer(tag)["input_ids"]) == 1, tag
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2"
    assert 250_000 < parameter_count(tiny_model_dir) < 400_000


def test_unknown_model_is_not_downloaded(tmp_path):
    try:
        build_model("no-such-org/no-such-model", tmp_path / "m")
    except ModelNotFound as exc:
        assert "never downloads" in str(exc)
    else:
        raise AssertionError("an unknown model id must not resolve")


def test_the_tiny_model_is_built_once_per_code_version_and_then_copied(tiny_model_dir, tmp_path):
    from tasks.models import build_model, model_build_cache

    again = build_model("tiny", tmp_path / "again")
    cached = [p for p in model_build_cache().glob("tiny-*") if (p / "config.json").exists()]
    assert cached, "the session's tiny model was not kept in the build cache"
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in tiny_model_dir.iterdir())
    assert all((again / p.name).read_bytes() == p.read_bytes() for p in tiny_model_dir.iterdir())
