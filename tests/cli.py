"""Running the project's command-line tools from tests, as a user does: a real process in the repository, with the
environment the user started the tests with (not the CPU settings the test process made for itself).

Every process a test starts goes through here: tests/conftest.py puts a test that calls one of these functions
(directly, through a helper of its module, or through a fixture) in the `e2e` tier, out of the quick one.
"""
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


def command(script, *args):
    """The command line of SCRIPT ARGS: `bash` for a shell script (scripts/*.sh), else this Python (a tool such as
    train.py, or "-c" and a program). Paths are the repository's unless absolute; arguments may be numbers or paths."""
    if script != "-c" and not os.path.isabs(script):
        script = os.path.join(ROOT, script)
    interpreter = "bash" if script.endswith(".sh") else sys.executable
    return [interpreter, script, *map(str, args)]


def run_tool(script, *args, env=None, cwd=ROOT, timeout=600):
    """SCRIPT ARGS run to the end in `cwd` (the repository unless given), output captured; the CompletedProcess.
    `env`: the user's environment unless given (build one with user_env)."""
    return subprocess.run(command(script, *args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env or user_env())


def run_python(program, env=None, cwd=ROOT, timeout=600):
    """python -c PROGRAM, run as run_tool runs a tool (the repository is the working directory, so `src` imports)."""
    return run_tool("-c", program, env=env, cwd=cwd, timeout=timeout)


def start_tool(script, *args, env=None, cwd=ROOT, output=subprocess.PIPE, **options):
    """SCRIPT ARGS started and left running (to be signalled, killed or waited for): the Popen. `output`: where its
    stdout and stderr go (pipes, read as text, unless given, e.g. subprocess.DEVNULL); `options`: more Popen
    arguments (start_new_session=True: a process group of its own, to signal a launcher with its workers)."""
    return subprocess.Popen(command(script, *args), cwd=cwd, env=env or user_env(), stdout=output, stderr=output,
                            text=True, **options)


def check(result):
    """A finished tool's result, or an AssertionError holding its exit code and output if it failed."""
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(result.args[:2])} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def assert_user_error(result, message):
    """Exit code 2 and one line on stderr, "error: ..." holding `message`, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


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
