"""The one error type that means "the user asked for something we cannot do".

Command-line tools catch it, print its message as one line on stderr and exit with code 2;
anything else is a bug and keeps its traceback (exit code 1).
"""


class UserError(Exception):
    """Bad input: an unknown name, a missing path, an unsupported size, a mismatched checkpoint."""


class TrainingDiverged(Exception):
    """A loss became NaN or infinite. The run stops (exit code 1) naming the step; checkpoints are kept."""
