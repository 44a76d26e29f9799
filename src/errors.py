"""The one error type that means "the user asked for something we cannot do".

Command-line tools catch it, print its message as one line on stderr and exit with code 2;
anything else is a bug and keeps its traceback (exit code 1).
"""


class UserError(Exception):
    """Bad input: an unknown name, a missing path, an unsupported size, a mismatched checkpoint."""


class TrainingDiverged(Exception):
    """A loss became NaN or infinite. The run stops (exit code 1) naming the step; checkpoints are kept."""


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped training after a step, whose checkpoint was saved. Exit code 128 + signal number."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code
