"""One small real training run shared by the eval/export/verify tests, trained once per test session.

A pytest fixture defined in one test module is rebuilt in every module that imports it, so the run is cached
here, at module level, and each test module wraps `small_digits_run` in its own fixture.
"""
from tests.cli import train

# Narrow nets keep the run to seconds on a 2-core CPU; the code path is the full one. A checkpoint at every step,
# so "the run directory means its newest checkpoint" can be told apart from the older one. No sample-quality
# measurement (~35 s for its classifier): a run directory then means its newest checkpoint, not its best one.
SMALL_RUN = ["--dataset", "digits", "--max_steps", "2", "--save_checkpoint_steps", "1", "--batch_size", "4",
             "--ngf", "8", "--ndf", "8", "--nz", "16", "--log_interval", "1", "--metrics_interval", "0"]
_cache = {}


def small_digits_run(tmp_path_factory):
    """The run directory of a 2-step digits run (32 px, nc 1, nz 16, ngf = ndf = 8): checkpoints at steps 1, 2.
    train.py runs as a user runs it (tests/cli.py user_env)."""
    if "digits" not in _cache:
        run_dir = tmp_path_factory.mktemp("shared_run") / "digits"
        train(*SMALL_RUN, "--output_path", run_dir)
        _cache["digits"] = run_dir
    return _cache["digits"]
