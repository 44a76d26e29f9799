"""Running the project's command-line tools from tests, as a user does: a real process in the repository."""
import subprocess
import sys

from tests.conftest import ROOT


def train(*args, check=True):
    """python train.py ARGS; with check, a non-zero exit fails the test with the tool's output."""
    result = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"train.py failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
