"""A trained G or D for eval.py, export.py and verify.py, from a checkpoint file or a run directory.

`--ckpt_file` may name a generator_N.ckpt / discriminator_N.ckpt or a run directory (then its newest checkpoint
of the wanted network). The architecture comes from the checkpoint itself (train.py records it there), so nobody
re-types --ngf or --image_size. The optional `overrides` (from --image_size, --nz, --ngf, --ndf, --nc) exist for
checkpoints that do not record their architecture; where a checkpoint does record one, an override that disagrees
is an error rather than silently ignored (e.g. --image_size 32 given for a 64 px generator).

MindSpore (through src/run/checkpoint.py) is imported on first use only: the CLIs build their parsers from this module
before src/cpu/device.py has set the CPU environment MindSpore reads when it loads.
"""
import os
import sys

from src.run import directory as run_dir
from src.errors import UserError


KIND = {"G": "generator", "D": "discriminator"}
WIDTH = {"G": "ngf", "D": "ndf"}  # the width parameter of each network
# What a checkpoint without a recorded architecture is assumed to be: the model zoo's 32 px CIFAR-10 nets.
DEFAULTS = {"image_size": 32, "nz": 100, "ngf": 64, "ndf": 64, "nc": 3}


def arch_keys(net):
    return ("image_size", "nz", "ngf", "nc") if net == "G" else ("image_size", "ndf", "nc")


WHICH = ("best", "latest")


def resolve(path, net, which=None):
    """The checkpoint file of network `net` ('G' or 'D') that `path` (a file or a run directory) designates.

    In a run directory, `which` picks the checkpoint: "best" (the lowest primary sample-quality metric the
    trainer measured, see src/run_dir.best_quality_record), "latest", or None: the best when it is known, else the
    latest."""
    if not path:
        raise UserError("--ckpt_file is required: a generator_/discriminator_ checkpoint or a run directory")
    if which not in (None,) + WHICH:
        raise UserError(f"unknown --which '{which}'; choose one of: {', '.join(WHICH)}")
    from src.run import checkpoint
    if os.path.isdir(path):
        steps = checkpoint.saved_steps(path, KIND[net])
        if not steps:
            raise UserError(f"no {KIND[net]}_*.ckpt in {os.path.join(path, checkpoint.CKPT_DIR)}: "
                            f"is {path} a run directory of train.py?")
        if which != "latest":
            best = run_dir.best_quality_record(run_dir.read_quality(path), set(steps))
            if best is not None:
                return checkpoint.ckpt_path(path, KIND[net], best["step"])
            if which == "best":
                raise UserError(f"{path} has no sample-quality measurement at a kept checkpoint, so no best one "
                                f"(train with --metrics_interval, or use --which latest)")
        return checkpoint.ckpt_path(path, KIND[net], steps[-1])
    if which is not None:
        raise UserError(f"--which {which} chooses among a run directory's checkpoints; {path} is one file")
    if not os.path.exists(path):
        raise UserError(f"checkpoint not found: {path}")
    return path


def run_dir_of(ckpt_file):
    """The run directory holding `ckpt_file` (RUN/ckpt/x.ckpt -> RUN), or None for a checkpoint kept elsewhere."""
    folder = os.path.dirname(os.path.abspath(ckpt_file))
    run = os.path.dirname(folder)
    if os.path.basename(folder) == run_dir.CKPT_DIR and os.path.isfile(os.path.join(run, run_dir.CONFIG_FILE)):
        return run
    return None


def _config_arch(ckpt_file):
    """Architecture values from the run's config.json, for checkpoints that do not record them."""
    cfg = run_dir.config_or_empty(run_dir_of(ckpt_file))  # a damaged config.json only loses this fallback
    return {k: cfg[k] for k in DEFAULTS if isinstance(cfg.get(k), int) and not isinstance(cfg[k], bool)}


def architecture(ckpt_file, net, overrides=None):
    """The architecture dict of `net` stored in `ckpt_file`, checked against `overrides` (None values ignored).

    Precedence for a value the checkpoint does not record: the override, then the run's config.json, then the
    model zoo default. A checkpoint of the other network is refused with a hint."""
    from src.run import checkpoint
    stored = checkpoint.network_architecture(ckpt_file)
    other = "D" if net == "G" else "G"
    if stored.get("net") == other:
        raise UserError(f"{ckpt_file} is a {KIND[other]} checkpoint; this needs a {KIND[net]} checkpoint "
                        f"({KIND[net]}_N.ckpt) or a run directory")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None and k in arch_keys(net)}
    for key, value in overrides.items():
        if key in stored and stored[key] != value:
            raise UserError(f"{ckpt_file} holds a {KIND[net]} with {key}={stored[key]}, but --{key} {value} "
                            f"was given (leave --{key} out: the checkpoint records its architecture)")
    config = _config_arch(ckpt_file)
    arch = {}
    for key in arch_keys(net):
        arch[key] = stored.get(key, overrides.get(key, config.get(key, DEFAULTS[key])))
    if arch["image_size"] not in (32, 64):
        raise UserError(f"image size {arch['image_size']} is not supported; choose 32 or 64")
    arch["net"] = net
    return arch


def build(arch, ckpt_file=None):
    """The network described by `arch`, with the weights of `ckpt_file` (None: untrained, as built), in inference
    mode (BatchNorm uses its running statistics)."""
    from src.run import checkpoint
    if arch["net"] == "G":
        from src.generator import Generator
        network = Generator(arch["image_size"], arch["nz"], arch["ngf"], arch["nc"])
    else:
        from src.discriminator import Discriminator
        network = Discriminator(arch["image_size"], arch["ndf"], arch["nc"])
    if ckpt_file is not None:
        checkpoint.load_network(ckpt_file, network)
    network.set_train(False)
    return network


def load(path, net, overrides=None, which=None, warn=None):
    """(network, arch, ckpt_file) for `path` (checkpoint or run directory) and `net` ('G' or 'D'); `which`: see
    resolve().

    In a run directory, a checkpoint that cannot be read is skipped with one warning (through `warn`, default
    stderr) for the next newest one: a damaged file, or one a running trainer rotated away after it was chosen."""
    from src.run import checkpoint
    ckpt_file = resolve(path, net, which)
    if not os.path.isdir(path):
        arch = architecture(ckpt_file, net, overrides)
        return build(arch, ckpt_file), arch, ckpt_file
    tried = set()
    while True:
        tried.add(ckpt_file)
        try:
            arch = architecture(ckpt_file, net, overrides)
            return build(arch, ckpt_file), arch, ckpt_file
        except checkpoint.UnreadableCheckpoint as error:
            steps = checkpoint.saved_steps(path, KIND[net])
            others = [checkpoint.ckpt_path(path, KIND[net], step) for step in reversed(steps)]
            others = [other for other in others if other not in tried]
            if not others:
                raise
            (warn or (lambda line: print(line, file=sys.stderr)))(f"warning: {error}; using {others[0]}")
            ckpt_file = others[0]


def add_arch_arguments(parser, nets=("G",)):
    """--image_size/--nz/--ngf/--ndf/--nc (those of `nets`): only for checkpoints that do not record them."""
    keys = [key for key in DEFAULTS if any(key in arch_keys(net) for net in nets)]
    for key in keys:
        parser.add_argument("--" + key, type=int, default=None,
                            help="only for a checkpoint that does not record its architecture "
                                 f"(default: the run's config.json, else {DEFAULTS[key]})")


def add_which_argument(parser):
    parser.add_argument("--which", choices=WHICH, default=None,
                        help="for a run directory: its best checkpoint by sample quality or its latest "
                             "(default: the best when the run measured it, else the latest)")


def overrides_from(args, net):
    return {k: getattr(args, k, None) for k in arch_keys(net)}
