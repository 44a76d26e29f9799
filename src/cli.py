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
import os
import sys

from src.errors import Interrupted, TrainingDiverged, UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad arguments as a UserError (one line, exit code 2) instead of printing usage."""

    def error(self, message):
        raise UserError(message)


def available_memory():
    """Bytes of memory this process may still use: the kernel's MemAvailable, else the physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def check_memory(needed_bytes, what):
    """A UserError, before any work, when `what` (e.g. "--num_images 100000000") would need more memory than the
    machine has: one "needs ~N GB" line instead of an allocation failure minutes later."""
    available = available_memory()
    if available is not None and needed_bytes > available:
        raise UserError(f"{what} needs ~{needed_bytes / 2**30:,.1f} GB of memory, more than the "
                        f"{available / 2**30:,.1f} GB available; ask for fewer")


def check_seed(seed, flag="--seed"):
    """A seed is a non-negative integer (NumPy's generators refuse negative ones, with a traceback)."""
    if seed < 0:
        raise UserError(f"{flag} must be 0 or positive, not {seed}")


def command(main):
    """Wrap a tool's main(argv) so that it returns the tool's exit code (see the module docstring)."""

    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            main(*args, **kwargs)
        except (UserError, TrainingDiverged) as error:
            print("error: " + " ".join(str(error).split()), file=sys.stderr)  # one line, whatever it quotes
            return 2 if isinstance(error, UserError) else 1
        except Interrupted as stop:
            return stop.exit_code
        return 0

    return run
