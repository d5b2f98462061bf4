"""``call_in_fresh_process`` for real (a new Python process each call): what the function returns or raises
comes back, its log lines reach the caller's log, a child that dies or overruns is an error naming it."""

import logging
import math
import os
import sys
import time

import pytest

from tasks.child_process import ChildProcessFailed, call_in_fresh_process, run_streamed


def test_the_return_value_and_the_childs_log_lines_come_back(caplog):
    assert call_in_fresh_process(math.comb, 10, 3, tag="comb") == 120
    with caplog.at_level(logging.INFO, logger="thinkflow"):
        call_in_fresh_process(logging.getLogger("thinkflow").info, "decoded %d replies", 7, tag="decode")
    assert "[decode] decoded 7 replies" in caplog.messages


def test_the_childs_exception_is_raised_with_its_type_and_traceback():
    with pytest.raises(ValueError, match="invalid literal") as raised:
        call_in_fresh_process(int, "not a number", tag="parse")
    assert any("raised in the child process (parse)" in note and "Traceback" in note for note in raised.value.__notes__)


def test_a_child_that_exits_without_a_result_or_overruns_is_an_error_naming_it():
    with pytest.raises(ChildProcessFailed, match=r"exit: the child process exited with 3 and no result"):
        call_in_fresh_process(os._exit, 3, tag="exit")
    started = time.monotonic()
    with pytest.raises(ChildProcessFailed, match=r"sleep: exceeded its 3 s limit"):
        call_in_fresh_process(time.sleep, 60, tag="sleep", timeout_s=3)
    assert time.monotonic() - started < 30


LIBRARY_LINES = """
import warnings
from transformers.utils import logging
logging.get_logger("transformers.generation.utils").warning("Passing `generation_config` together with arguments")
warnings.warn("this option is deprecated", FutureWarning)
print("step 3/8", flush=True)
"""


def test_library_warnings_reach_the_run_log_as_warnings_and_the_rest_as_info(caplog):
    with caplog.at_level(logging.INFO, logger="thinkflow"):
        code, _ = run_streamed([sys.executable, "-c", LIBRARY_LINES], tag="worker", timeout_s=120)
    assert code == 0
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert levels["[worker] [transformers] Passing `generation_config` together with arguments"] == logging.WARNING
    assert any("FutureWarning: this option is deprecated" in m and v == logging.WARNING for m, v in levels.items())
    assert levels["[worker] step 3/8"] == logging.INFO
