"""Test set-up: the CPU settings train.py makes, applied before any test imports MindSpore; the CPU kernels' fixtures.

The tests' own process runs MindSpore's plain convolutions, so it takes the AVX2 cap that eval.py and verify.py set
(see src/cpu/device.py). The tools a test starts get the environment a user has instead (tests/cli.py user_env):
without the cap, unless the person running the tests set it, so train.py's own choice is what gets tested.
"""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from src.cpu.device import ONEDNN_ISA_VARIABLE, prepare_cpu_environment  # noqa: E402

# The user's own cap (empty: none), recorded before this process sets one. In the environment rather than in this
# module, because pytest loads this file as "conftest" and the tests import it again as "tests.conftest".
USER_ISA_VARIABLE = "DCGAN_TESTS_USER_" + ONEDNN_ISA_VARIABLE
os.environ.setdefault(USER_ISA_VARIABLE, os.environ.get(ONEDNN_ISA_VARIABLE, ""))
prepare_cpu_environment("CPU")
os.environ.setdefault("GLOG_v", "3")  # MindSpore's own INFO/WARNING chatter off


# ---- the CPU kernels: the default training path, so CI must be able to test them ----

def under_ci():
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.fixture
def cpp_compiler():
    """The C++ compiler the kernels' build would use (src/cpu/kernels compiler(): $CXX, g++, then clang++). Without
    one the test is skipped, and fails under CI (CI=true), where the kernels must be tested."""
    from src.cpu import kernels
    path, reason = kernels.compiler()
    if path is None:
        (pytest.fail if under_ci() else pytest.skip)(f"the CPU kernels cannot be built here: {reason}")
    return path


@pytest.fixture
def cpu_kernels(cpp_compiler):
    """The path of the project's CPU kernels, built (and checked) if needed; a build that fails fails the test."""
    from src.cpu import kernels
    path = kernels.library()
    if path is None:
        pytest.fail(f"the CPU kernels did not build with {cpp_compiler} (the warning logged above says why)")
    return path
