"""Files that are replaced whole: a reader (the run report, a resumed run, a user's viewer) sees the old file or the
new one, never half of one; a write that fails leaves the old file and no temporary file behind."""
import os


def write_atomically(path, write):
    """Call write(tmp) on a temporary name beside `path`, then rename it over `path`. Errors propagate after the
    temporary file is removed. Returns path. (Checkpoints have their own, durable version: src/run/checkpoint.py.)"""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path

