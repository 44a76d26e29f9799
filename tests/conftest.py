"""Test set-up: the CPU settings train.py makes, applied before any test imports MindSpore; the test tiers; the
CPU kernels' fixtures.

The tests' own process runs MindSpore's plain convolutions, so it takes the AVX2 cap that eval.py and verify.py set
(see src/cpu/device.py). The tools a test starts get the environment a user has instead (tests/cli.py user_env):
without the cap, unless the person running the tests set it, so train.py's own choice is what gets tested.

Tiers: every test gets exactly one of the markers in TIERS, here and nowhere else (no test file names a tier):
tests/faults/ and tests/distributed/ by their directory, then `e2e` for a test that starts a process through
tests/cli.py or subprocess (found in its code, its module's helpers and its fixtures: see `starts_processes`) or
is listed in SLOW, and `quick` for the rest. `python -m pytest -q -m quick tests` runs the quick tier.
"""
import dis
import importlib
import os
import sys
import types

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
sys.path.insert(0, ROOT)

from src.cpu.device import ONEDNN_ISA_VARIABLE, prepare_cpu_environment  # noqa: E402

# The user's own cap (empty: none), recorded before this process sets one. In the environment rather than in this
# module, because pytest loads this file as "conftest" and the tests import it again as "tests.conftest".
USER_ISA_VARIABLE = "DCGAN_TESTS_USER_" + ONEDNN_ISA_VARIABLE
os.environ.setdefault(USER_ISA_VARIABLE, os.environ.get(ONEDNN_ISA_VARIABLE, ""))
prepare_cpu_environment("CPU")
os.environ.setdefault("GLOG_v", "3")  # MindSpore's own INFO/WARNING chatter off

TIERS = {
    "quick": "in-process tests of the library's logic; the whole tier runs in under 3 minutes on 2 cores",
    "e2e": "starts the tools (train.py, eval.py, ...) or another program as a process, or is slow in-process (SLOW)",
    "faults": "tests/faults/: damaged and missing files, killed and interrupted runs, full disks",
    "distributed": "tests/distributed/: several training processes and their launchers",
}
DIRECTORY_TIERS = {"faults": "faults", "distributed": "distributed"}  # every test under tests/<directory>/
PROCESS_STARTERS = ("run_tool", "run_python", "start_tool", "train")  # tests/cli.py's functions that start one
# In-process work too slow for the quick tier, as file::name of a test or of a fixture that makes its tests slow
# (with why, and the time it took on a 2-core AMD EPYC shared with other work): e2e.
SLOW = {
    "test_quality.py::judge": "trains the digits judge's classifier (26 s), then scores 500 images per case",
    "test_cpu_kernels.py::test_a_library_that_fails_its_check_is_not_used": "compiles the kernels afresh (8 s)",
}


def pytest_configure(config):
    for name, meaning in TIERS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


def pytest_collection_modifyitems(config, items):
    import subprocess
    import tests.cli
    # Also the standard library's own, for a test that calls them directly (a browser, mount, ip).
    starters = [getattr(tests.cli, name) for name in PROCESS_STARTERS] + [
        subprocess.run, subprocess.Popen, subprocess.call, subprocess.check_call, subprocess.check_output, os.system]
    for item in items:
        item.add_marker(tier(item, starters))


def tier(item, starters):
    path = os.path.relpath(str(item.path), TESTS).split(os.sep)
    if len(path) > 1 and path[0] in DIRECTORY_TIERS:
        return DIRECTORY_TIERS[path[0]]
    names = {f"{path[-1]}::{name}" for name in (item.originalname, *item.fixturenames)}
    if names & SLOW.keys() or starts_processes(item, starters):
        return "e2e"
    return "quick"


def starts_processes(item, starters):
    """Whether the test or one of its fixtures calls one of `starters`, itself or through functions defined under
    tests/ that it calls (module helpers, tests/trained_run.py, ...)."""
    functions = [item.function]
    for name in item.fixturenames:
        functions += [definition.func for definition in item._fixtureinfo.name2fixturedefs.get(name, ())]
    seen = set()
    return any(_reaches(function, starters, seen) for function in functions)


def _reaches(function, starters, seen):
    code = getattr(function, "__code__", None)
    if code is None or code in seen or not code.co_filename.startswith(TESTS + os.sep):
        return False  # not a test's own code (pytest's fixtures, the library, ...)
    seen.add(code)
    for value in _named_in(code, function.__globals__):
        if any(value is starter for starter in starters):
            return True
        if isinstance(value, types.FunctionType) and _reaches(value, starters, seen):
            return True
    return False


def _named_in(code, namespace):
    """The objects the code (and the functions and lambdas inside it) names: its globals, attributes of the modules
    among them (`cli.train`), and what it imports from tests/ itself (`from tests.cli import train`, or
    `from tests import cli` then `cli.train`, inside a test)."""
    last, previous, module, local = None, None, None, {}
    for instruction in dis.get_instructions(code):
        operation, name, value = instruction.opname, instruction.argval, None
        if operation in ("LOAD_GLOBAL", "LOAD_NAME"):
            value = namespace.get(name)
        elif operation in ("LOAD_FAST", "LOAD_DEREF"):
            value = local.get(name)
        elif operation in ("LOAD_ATTR", "LOAD_METHOD") and isinstance(last, types.ModuleType):
            value = _attribute(last, name)
        elif operation == "IMPORT_FROM" and module is not None:
            value = _attribute(module, name)
        elif operation == "IMPORT_NAME":
            from_list = previous is not None and previous.argval  # `import a.b` binds a; `from a.b import c` a.b
            module = importlib.import_module(name if from_list else name.split(".")[0]) \
                if name.split(".")[0] == "tests" else None
            value = module
        elif operation in ("STORE_FAST", "STORE_DEREF") and last is not None:
            local[name] = last  # an import (or an alias) bound to a local name
        last, previous = value, instruction
        if value is not None:
            yield value
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _named_in(constant, namespace)


def _attribute(module, name):
    """module.name, importing it when it is a submodule of tests/ not imported yet."""
    if not hasattr(module, name) and module.__name__.split(".")[0] == "tests":
        try:
            importlib.import_module(f"{module.__name__}.{name}")
        except ImportError:
            return None
    return getattr(module, name, None)


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
