"""The project's C++ CPU kernels for MindSpore's ops.Custom (func_type "aot"), built on first use.

`library()` compiles the kernels (dnnl_conv.cc: convolutions, conv_gemm.cc: those with few output pixels as one
matrix product; dnnl_eltwise.cc: LeakyReLU/ReLU; batch_norm_act.cc: BatchNorm fused with them; dnnl_runtime.h: what
they share) into one shared object,
against the oneDNN library that MindSpore ships (mindspore/lib/libdnnl.so.3; no headers needed: dnnl_api.h declares
what is used), and returns its path. The compiler is $CXX if set, else g++, else clang++. The object lives in a cache
directory (~/.cache/dcgan/custom_ops) keyed by the sources, the library and the compiler; a file lock there makes
concurrent processes (msrun workers on one host) build it once. A new build prints one line, then is checked in a
child process (self_check.py: dnnl_api.h's constants against the loaded oneDNN, and each kernel once against numpy)
before it is used; a library that passed is marked so and not checked again.

It does not import MindSpore, so src/cpu/device.py can ask for it before MindSpore is imported (oneDNN's CPU
instruction-set cap must be chosen then). When anything fails (no compiler, no libdnnl.so.3, a compile error, a
failed check) it logs one warning and returns None, and the callers keep MindSpore's plain layers.
"""
import ctypes
import fcntl
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile

from src.files import user_cache_dir

log = logging.getLogger(__name__)

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = ("dnnl_conv.cc", "conv_gemm.cc", "dnnl_eltwise.cc", "batch_norm_act.cc")
SOURCES = KERNELS + ("conv_gemm.h", "dnnl_runtime.h", "dnnl_api.h", "self_check.py")
COMPILERS = ("g++", "clang++")  # after $CXX
# What the build line announces. Parallel compile + self-check with g++ 12 on a 2-core AMD EPYC (AVX-512): 2.3-4.2 s
# at load average ~1.5-2, 7-10 s at 3-6 while other jobs shared the cores (measured 2026-12-06).
BUILD_SECONDS = 5
CHECKED = ".checked"  # suffix of the marker a library gets when self_check.py passed it

BUILD = {}  # {"path": the library or None} once library() has run in this process (tests reset it)


def mindspore_lib_dir():
    """mindspore/lib, found without importing MindSpore; None if MindSpore is not installed."""
    spec = importlib.util.find_spec("mindspore")
    if spec is None or not spec.origin:
        return None
    return os.path.join(os.path.dirname(spec.origin), "lib")


def cache_dir():
    return user_cache_dir("custom_ops")


def compiler():
    """(path, --version text) of the first C++ compiler that runs: $CXX, then g++, then clang++; or (None, reason)."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else []
    tried = []
    for name in dict.fromkeys(names + list(COMPILERS)):
        path = shutil.which(name)
        if not path:
            tried.append(name)
            continue
        try:
            done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            done = None
        if done is not None and done.returncode == 0:
            return path, done.stdout
        tried.append(f"{name} (does not run)")
    return None, f"no C++ compiler on PATH (tried {', '.join(tried)})"


def _run_all(commands):
    """Run the commands at once (one per core); None, or the first line of the first failure's message."""
    failures = []
    for start in range(0, len(commands), os.cpu_count() or 1):
        running = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for cmd in commands[start:start + (os.cpu_count() or 1)]]
        for process in running:
            out, err = process.communicate(timeout=900)
            if process.returncode != 0:
                lines = (err or out).strip().splitlines()
                failures.append(lines[0] if lines else f"exit status {process.returncode}")
    return failures[0] if failures else None


def _compile(cxx, target, dnnl, lib_dir):
    """None, or why the compiler failed. The sources compile in parallel, then link to a temporary name that is
    renamed into place: no process ever loads half a file."""
    with tempfile.TemporaryDirectory(dir=os.path.dirname(target)) as tmp_dir:
        objects = [os.path.join(tmp_dir, name + ".o") for name in KERNELS]
        tmp = os.path.join(tmp_dir, "dnnl_kernels.so")
        flags = [cxx, "-std=c++17", "-O2", "-fPIC", "-pthread"]
        try:
            failure = _run_all([flags + ["-c", os.path.join(HERE, name), "-o", obj]
                                for name, obj in zip(KERNELS, objects)])
            failure = failure or _run_all([flags + ["-shared", "-o", tmp, *objects, dnnl, f"-Wl,-rpath,{lib_dir}",
                                                    "-Wl,--no-undefined"]])
        except (OSError, subprocess.SubprocessError) as error:
            failure = str(error)
        if not failure:
            os.replace(tmp, target)
    return failure


def _self_check(target):
    """None, or why self_check.py refused the library (run in a child: a crash there cannot end training)."""
    try:
        done = subprocess.run([sys.executable, os.path.join(HERE, "self_check.py"), target], capture_output=True,
                              text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    if done.returncode == 0 and done.stdout.strip() == "ok":
        return None
    lines = (done.stdout.strip() or done.stderr.strip() or f"exit status {done.returncode}").splitlines()
    return lines[-1]


def _build(announce):
    """(path, None) or (None, reason)."""
    if not sys.platform.startswith("linux"):
        return None, "not Linux"
    lib_dir = mindspore_lib_dir()
    dnnl = lib_dir and os.path.join(lib_dir, "libdnnl.so.3")
    if not dnnl or not os.path.exists(dnnl):
        return None, "MindSpore's libdnnl.so.3 not found"
    cxx, version = compiler()
    if not cxx:
        return None, version
    key = hashlib.sha256()
    for name in SOURCES:
        with open(os.path.join(HERE, name), "rb") as f:
            key.update(f.read())
    stat = os.stat(dnnl)
    key.update(f"{os.path.realpath(dnnl)}|{stat.st_size}|{stat.st_mtime_ns}|{cxx}|{version}".encode())
    out_dir = os.path.join(cache_dir(), key.hexdigest()[:16])
    target = os.path.join(out_dir, "dnnl_kernels.so")
    if os.path.exists(target + CHECKED):
        return target, None
    try:
        os.makedirs(out_dir, exist_ok=True)
        lock = open(os.path.join(out_dir, ".lock"), "w")
    except OSError as error:
        return None, f"cannot write the build cache {out_dir} ({error})"
    with lock:
        # One process builds and checks; the others wait here, then find it done. Closing the file unlocks it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(target + CHECKED):  # another process built it while this one waited
            return target, None
        if not os.path.exists(target):
            announce(f"building CPU kernels (first run, ~{BUILD_SECONDS} s) with {os.path.basename(cxx)} in {out_dir}")
            failure = _compile(cxx, target, dnnl, lib_dir)
            if failure:
                return None, f"compiling the kernels with {cxx} failed: {failure}"
        failure = _self_check(target)
        if failure:
            return None, f"the kernels built in {out_dir} failed their check: {failure}"
        open(target + CHECKED, "w").close()
        return target, None


def _announce(line):
    print(line, flush=True)  # progress, not a problem: stdout, where train.py's log goes


def library(announce=_announce):
    """Path of the compiled kernels' shared object, or None (logged once, with the reason) if unavailable.
    A build first passes its one line to announce()."""
    if "path" not in BUILD:
        try:
            path, reason = _build(announce)
        except Exception as error:  # a broken build must never stop training: the plain layers still work
            path, reason = None, f"{type(error).__name__}: {error}"
        BUILD["path"] = path
        if path is None:
            log.warning("fast CPU convolutions unavailable (%s): using MindSpore's convolutions", reason)
    return BUILD["path"]


def dnnl_version():
    """(major, minor, patch, cpu_runtime) of the oneDNN the kernels run on, or None."""
    path = library()
    if path is None:
        return None
    info = (ctypes.c_int * 4)()
    ctypes.CDLL(path).DnnlConvInfo(info)
    return tuple(info)
