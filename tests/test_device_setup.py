"""The process set-up every tool shares (src/cpu/device.py), in-process: the oneDNN instruction-set cap decision,
the collective timeout of an msrun worker, and the capture of MindSpore's C++ log. What a user sees of them in a
real train.py process is tested in tests/test_cpu_paths.py."""
import os
import sys
import types

import pytest

from src.cpu import device


def test_the_isa_cap_is_the_users_when_set_and_only_chosen_before_mindspore_loads(monkeypatch):
    monkeypatch.setenv(device.ONEDNN_ISA_VARIABLE, "AVX512_CORE")
    assert device.prepare_cpu_environment("CPU") == f"{device.ONEDNN_ISA_VARIABLE}=AVX512_CORE (set by you)"
    assert device.prepare_cpu_environment("GPU") is None  # oneDNN is a CPU library
    monkeypatch.delenv(device.ONEDNN_ISA_VARIABLE)
    monkeypatch.setitem(sys.modules, "mindspore", types.ModuleType("mindspore"))  # loaded: too late to choose
    assert "MindSpore was already imported" in device.prepare_cpu_environment("CPU")
    assert device.ONEDNN_ISA_VARIABLE not in os.environ
    monkeypatch.delitem(sys.modules, "mindspore")  # as at the start of eval.py: the cap is set
    assert "AVX2 set" in device.prepare_cpu_environment("CPU", fast_cpu="off")
    assert os.environ[device.ONEDNN_ISA_VARIABLE] == "AVX2"


@pytest.mark.parametrize("setting, expected", [
    ("", str(device.MIN_COLLECTIVE_TIMEOUT_S)),  # unset: at least half an hour while rank 0 saves and measures
    ("30", str(device.MIN_COLLECTIVE_TIMEOUT_S)),
    ("7200", "7200"),  # the user's longer limit stands
    ("-1", "-1"),  # no limit
    ("soon", str(device.MIN_COLLECTIVE_TIMEOUT_S)),
])
def test_an_msrun_worker_waits_at_least_the_minimum_collective_timeout(setting, expected):
    assert device.worker_collective_timeout(setting) == expected


def test_captured_stderr_holds_what_was_written_to_file_descriptor_2():
    with device.captured_stderr() as captured:
        os.write(2, b"a C++ log line\n")
    assert captured == ["a C++ log line\n"]
