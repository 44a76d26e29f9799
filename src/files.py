"""Files that are replaced whole: a reader (the run report, a resumed run, a user's viewer) sees the old file or the
new one, never half of one; a write that fails leaves the old file and no temporary file behind."""
import os


def user_cache_dir(*parts):
    """~/.cache/dcgan (or a path inside it): the one place the project keeps what it builds or draws once per user
    (CPU kernels, the digits hold-out, quality classifiers of read-only datasets). Read at each call: HOME may
    differ between processes."""
    return os.path.join(os.path.expanduser("~"), ".cache", "dcgan", *parts)


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

