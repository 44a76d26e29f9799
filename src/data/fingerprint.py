"""What data a run trains on, in a few bytes: so a resumed run can tell whether --data_path still holds it.

A fingerprint is {"source": text, "files": N, "bytes": B, "digest": 12 hex digits}: for a built-in dataset its name
and split; for a path, the names (relative to the path) and sizes of the regular files under it, hidden ones
excepted. Names and sizes only, never contents: a listing of ImageNet's 1.3 million files takes seconds, reading
them would take an hour. It tells "another folder" or "images added or removed" from "the same files, moved or
copied to another machine" (same names and sizes: the same fingerprint wherever the folder is).
No MindSpore here: train.py checks the fingerprint before MindSpore starts.
"""
import hashlib
import os

from src.data.options import BUILT_IN


def fingerprint(dataset, data_path, split="train"):
    """The fingerprint of what `dataset` at `data_path` reads (see the module docstring), or None when the path
    cannot be listed (the dataset reader then says what is wrong with it)."""
    digest = hashlib.sha1()
    if dataset in BUILT_IN:  # generated in memory: a --data_path is not read
        digest.update(f"{dataset}|{split}".encode())
        return {"source": f"built-in {dataset} ({split})", "files": 0, "bytes": 0, "digest": digest.hexdigest()[:12]}
    if not data_path or not os.path.exists(data_path):
        return None
    files, total = 0, 0
    for name, size in _listing(data_path):
        digest.update(f"{name}\0{size}\n".encode("utf-8", "surrogateescape"))
        files, total = files + 1, total + size
    return {"source": os.path.abspath(data_path), "files": files, "bytes": total, "digest": digest.hexdigest()[:12]}


def _listing(data_path):
    """(relative name, size) of every regular, non-hidden file under `data_path` (or of the file itself), sorted."""
    if os.path.isfile(data_path):
        yield os.path.basename(data_path), os.path.getsize(data_path)
        return
    for folder, dirs, names in os.walk(data_path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            try:
                size = os.path.getsize(path)
            except OSError:  # removed while listing, or a broken link: not read by training either
                continue
            if os.path.isfile(path):
                yield os.path.relpath(path, data_path), size


def describe(fp):
    """One phrase for messages: 'PATH (N files, B bytes, digest D)'."""
    if not isinstance(fp, dict):
        return "unknown data"
    if not fp.get("files"):
        return f"{fp.get('source')} (digest {fp.get('digest')})"
    return f"{fp.get('source')} ({fp.get('files')} files, {fp.get('bytes')} bytes, digest {fp.get('digest')})"


def same_data(a, b):
    return isinstance(a, dict) and isinstance(b, dict) and a.get("digest") == b.get("digest")
