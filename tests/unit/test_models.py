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
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
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
