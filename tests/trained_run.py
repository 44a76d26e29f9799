"""One small real training run shared by the eval/export/verify tests, trained once per test session.

A pytest fixture defined in one test module is rebuilt in every module that imports it, so the run is cached
here, at module level, and each test module wraps `small_digits_run` in its own fixture.
"""
import subprocess
import sys

from tests.conftest import ROOT

# Narrow nets keep the run to seconds on a 2-core CPU; the code path is the full one. A checkpoint at every step,
# so "the run directory means its newest checkpoint" can be told apart from the older one. No sample-quality
# measurement (~35 s for its classifier): a run directory then means its newest checkpoint, not its best one.
SMALL_RUN = ["--dataset", "digits", "--max_steps", "2", "--save_checkpoint_steps", "1", "--batch_size", "4",
             "--ngf", "8", "--ndf", "8", "--nz", "16", "--log_interval", "1", "--metrics_interval", "0"]
_cache = {}


def run_cli(script, *args, cwd=ROOT, timeout=600):
    """python SCRIPT ARGS as a user runs it; returns the CompletedProcess."""
    command = [sys.executable, script if script.startswith("/") else f"{ROOT}/{script}", *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def check(result):
    if result.returncode != 0:
        raise AssertionError(f"exit code {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def assert_user_error(result, message):
    """Exit code 2 and one line on stderr holding `message`, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def small_digits_run(tmp_path_factory):
    """The run directory of a 2-step digits run (32 px, nc 1, nz 16, ngf = ndf = 8): checkpoints at steps 1, 2."""
    if "digits" not in _cache:
        run_dir = tmp_path_factory.mktemp("shared_run") / "digits"
        check(run_cli("train.py", *SMALL_RUN, "--output_path", run_dir))
        _cache["digits"] = run_dir
    return _cache["digits"]
