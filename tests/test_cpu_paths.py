"""The CPU paths a user can land on, each through the real train.py: the default (the project's oneDNN kernels at
the CPU's full instruction set), a first run that must build them, a machine without a C++ compiler, and
--fast_cpu off. Each of the last three must train on MindSpore's plain layers or build once, and say so in one line.
"""
import os
import sys

import pytest

from tests.cli import start_tool, train, user_env

SMALL = ["--dataset", "fake", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch_size", "4", "--max_steps", "2",
         "--metrics_interval", "0"]
FAST = "fast CPU convolutions: oneDNN kernels"
CAPPED = "ONEDNN_MAX_CPU_ISA=AVX2 set"
BUILDING = "building CPU kernels (first run"
UNAVAILABLE = "fast CPU convolutions unavailable"
needs_compiler = pytest.mark.usefixtures("cpp_compiler")  # tests/conftest.py: skipped without one, not in CI


def trained(run):
    return os.path.exists(os.path.join(run, "ckpt", "generator_00000002.ckpt"))


@needs_compiler
def test_default_path_trains_on_the_kernels_without_the_isa_cap(tmp_path):
    if "ONEDNN_MAX_CPU_ISA" in user_env():
        pytest.skip("ONEDNN_MAX_CPU_ISA is set in the shell that runs the tests")
    result = train(*SMALL, "--output_path", str(tmp_path / "run"))
    assert FAST in result.stdout and CAPPED not in result.stdout
    assert trained(tmp_path / "run")


@needs_compiler
def test_first_run_builds_the_kernels_once_then_reuses_them(tmp_path):
    env = user_env(HOME=tmp_path / "home", ONEDNN_MAX_CPU_ISA=None)  # an empty kernel cache
    first = train(*SMALL, "--output_path", str(tmp_path / "first"), env=env)
    assert first.stdout.count(BUILDING) == 1 and FAST in first.stdout and UNAVAILABLE not in first.stderr
    again = train(*SMALL, "--output_path", str(tmp_path / "again"), env=env)
    assert BUILDING not in again.stdout and FAST in again.stdout
    assert trained(tmp_path / "first") and trained(tmp_path / "again")


def test_without_a_compiler_training_uses_the_plain_layers_and_says_so_once(tmp_path):
    # PATH holds only the Python in use: no g++, no clang++, and no $CXX.
    env = user_env(HOME=tmp_path / "home", PATH=os.path.dirname(sys.executable), CXX=None, ONEDNN_MAX_CPU_ISA=None)
    result = train(*SMALL, "--output_path", str(tmp_path / "run"), env=env)
    assert result.stderr.count(UNAVAILABLE) == 1 and "no C++ compiler on PATH" in result.stderr
    assert CAPPED in result.stdout and BUILDING not in result.stdout
    assert trained(tmp_path / "run")


def test_fast_cpu_off_trains_on_the_plain_layers_with_the_isa_cap(tmp_path):
    result = train(*SMALL, "--fast_cpu", "off", "--output_path", str(tmp_path / "run"),
                   env=user_env(ONEDNN_MAX_CPU_ISA=None))
    assert CAPPED in result.stdout and FAST not in result.stdout
    assert trained(tmp_path / "run")


@needs_compiler
def test_processes_starting_together_build_the_kernels_once(tmp_path):
    """msrun starts every worker of a host at once; the file lock lets one build while the others wait."""
    env = user_env(HOME=tmp_path / "home")
    script = "from src.cpu import kernels; print(kernels.library())"
    workers = [start_tool("-c", script, env=env) for _ in range(3)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    paths = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(paths) == 1 and paths.pop().startswith(str(tmp_path / "home"))
    assert sum(out.count(BUILDING) for out, _ in outputs) == 1
