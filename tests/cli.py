"""Running the project's command-line tools from tests, as a user does: a real process in the repository, with the
environment the user started the tests with (not the CPU settings the test process made for itself)."""
import os
import subprocess
import sys

from src.cpu.device import ONEDNN_ISA_VARIABLE
from tests.conftest import ROOT, USER_ISA_VARIABLE


def user_env(**changes):
    """The environment a tool gets when a user runs it: the one the tests started with, plus `changes`
    (a value of None removes that variable)."""
    env = dict(os.environ)
    user_isa = env.pop(USER_ISA_VARIABLE, "")
    if user_isa:
        env[ONEDNN_ISA_VARIABLE] = user_isa
    else:
        env.pop(ONEDNN_ISA_VARIABLE, None)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def run_tool(script, *args, env=None, timeout=600):
    """python SCRIPT ARGS in the repository, output captured."""
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env or user_env())


def train(*args, check=True, env=None):
    """python train.py ARGS; with check, a non-zero exit fails the test with the tool's output."""
    result = run_tool("train.py", *args, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"train.py failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


class InProcessResult:
    """What run_in_process gives back, shaped like subprocess.CompletedProcess."""

    def __init__(self, args, returncode, stdout, stderr):
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr


def run_in_process(script, *args):
    """python SCRIPT ARGS run inside this process: the script's main(argv) is called with stdout and stderr
    captured, as many times as a test needs without paying MindSpore's start-up per run. An exception other than
    SystemExit escaping main() is a traceback, as the user would see it: returned in stderr with exit code 1.
    The signal mask the script may change (train.py blocks SIGINT/SIGTERM for its trainer) is restored."""
    import contextlib
    import importlib
    import io
    import signal
    import traceback

    module = importlib.import_module(os.path.splitext(os.path.basename(script))[0])
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = module.main(argv)
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            except BaseException:  # noqa: BLE001 - anything else reaching the user is a traceback
                traceback.print_exc(file=err)
                code = 1
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return InProcessResult([script, *argv], code, out.getvalue(), err.getvalue())
