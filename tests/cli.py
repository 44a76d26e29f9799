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
