"""What every command-line tool shares: bad arguments and bad input end as one line on stderr and exit code 2.

    @command
    def main(argv=None):
        args = parser.parse_args(argv)   # ArgumentParser raises UserError instead of printing usage
        ...                              # raise UserError("...") for anything the user can fix
    sys.exit(main())

Exit codes: 0 success; 2 UserError (bad input, the message as "error: ..."); 1 TrainingDiverged (a loss became NaN;
checkpoints kept) or any other exception (a bug, with its traceback); 128 + N when signal N stopped training after a
saved step (Interrupted: the trainer has already logged where it stopped and how to continue).
"""
import argparse
import functools
import sys

from src.errors import Interrupted, TrainingDiverged, UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad arguments as a UserError (one line, exit code 2) instead of printing usage."""

    def error(self, message):
        raise UserError(message)


def command(main):
    """Wrap a tool's main(argv) so that it returns the tool's exit code (see the module docstring)."""

    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            main(*args, **kwargs)
        except (UserError, TrainingDiverged) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2 if isinstance(error, UserError) else 1
        except Interrupted as stop:
            return stop.exit_code
        return 0

    return run
