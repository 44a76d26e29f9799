"""Training configuration: one dict per dataset, overridden by the command line.

The dict gives a dataset's sensible defaults (image size, epochs, batch size); every value can be overridden by
the flag of the same name. The resolved config is written to the run directory as config.json, so a run explains
itself and --resume needs no options repeated. Nothing here imports MindSpore: train.py parses arguments before
MindSpore starts, because some CPU settings must be in the environment before it loads (see src/cpu/device.py).
"""
import argparse
import os

from src.cli import ArgumentParser, check_memory, check_seed
from src.data import fingerprint as data_fingerprint
from src.data.options import BUILT_IN, IMAGE_SIZES, SPLITS
from src.errors import UserError
from src.mixed_precision import AMP_LEVELS, amp_level

DEVICE_TARGETS = ("CPU", "GPU", "Ascend")

# The paper's and the model zoo's hyper-parameters (but for the learning rates), shared by every dataset.
COMMON = dict(
    image_size=32, nz=100, ngf=64, ndf=64, nc=None,  # nc=None: the dataset's own channel count
    batch_size=128, beta1=0.5, epoch_size=20, max_steps=0,  # max_steps=0: no cap, run every epoch
    # G learns at twice D's rate: on MNIST this alone cut the classifier FID by a third at the same steps (README,
    # "Quality"); the paper trains both at 2e-4 (--recipe paper). lr_d=None: D learns at --lr too.
    lr=4e-4, lr_d=2e-4,
    seed=1, log_interval=50, sample_interval=500, save_checkpoint_steps=1000, keep_checkpoint_max=5,
    num_parallel_workers=2,
    strict=False,  # True: a bad image file stops the run; False: it is skipped and counted in the log
    amp_level="O0",  # O0: fp32; O1/O2: mixed precision (CPU: bf16 convs; GPU/Ascend: float16), src/mixed_precision.py
    fast_cpu="on",  # CPU only: src/cpu/fast_layers.py (same weights and results, faster); "off": plain layers
    split="train",  # which part of a dataset with official splits to train on (see src/dataset.py)
    ema_decay=0.99,  # moving average of G's weights, sampled and saved (0: off, the paper's G); see src/ema.py
    real_label=1.0,  # D's target for real images; < 1: one-sided label smoothing (src/cell.py)
    diffaug="",  # DiffAugment policies for D's inputs, e.g. "translation,cutout" ("": none; src/augment.py)
    d_contrastive=0.0,  # weight of D's contrastive loss on real images (0: off, the paper's D; src/contrastive.py)
    metrics_interval=None,  # sample-quality metrics every N steps (None: at every checkpoint; 0: never)
    metrics_num_images=1000,  # generated images per quality measurement during training
)

CONFIGS = {
    # The built-in demo: the 1,347 training digits of scikit-learn's 8x8 set, upscaled to 32 px. A quarter of the
    # model zoo's widths (128/64/32 channels): on these tiny images they drew better digits than ngf = ndf = 32 (cfid
    # 6-8 against 19-25 after the same 1,260 steps, README) at a third of the step time.
    # A checkpoint (and a quality measurement) every 10 epochs of 21 steps. Both nets at 2e-4: G at twice D's rate
    # drew worse digits here (cfid 5.16 / 6.11 against 4.59 / 5.28, seeds 1 / 2; bench/RESULTS.md).
    "digits": dict(COMMON, ngf=16, ndf=16, batch_size=64, epoch_size=60, log_interval=21, sample_interval=210,
                   save_checkpoint_steps=210, lr=2e-4, lr_d=None),
    "fake": dict(COMMON, epoch_size=1, log_interval=1, sample_interval=10, save_checkpoint_steps=10),
    "auto": dict(COMMON),
    "folder": dict(COMMON),
    "imagenet": dict(COMMON),  # the model zoo's ImageNet run: 32 px, 20 epochs
    "cifar10": dict(COMMON),
    "mnist": dict(COMMON, epoch_size=5),
    "celeba": dict(COMMON, image_size=64, epoch_size=5),  # the pytorch example's 64 px face run
    "lsun": dict(COMMON, image_size=64, epoch_size=1),  # the paper trains LSUN bedrooms for ~1 epoch
    "lfw": dict(COMMON, image_size=64, epoch_size=25),
    "mindrecord": dict(COMMON),  # prepare_data.py's output; --image_size must be the one it was converted at
}

# --d_contrastive's largest weight: beyond it the contrastive term drowns D's real-vs-fake loss (a typo guard).
MAX_CONTRASTIVE_WEIGHT = 100.0

# --diffaug: DiffAugment's policies (src/augment.py), in the order they apply.
DIFFAUG_POLICIES = ("color", "translation", "cutout")


def parse_diffaug(text):
    """'translation,cutout' -> the canonical policy string (DIFFAUG_POLICIES' order, no repeats); '' or None -> ''."""
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in DIFFAUG_POLICIES]
    if unknown:
        raise UserError(f"--diffaug: unknown policy {', '.join(unknown)}; give a comma-separated list of "
                        f"{', '.join(DIFFAUG_POLICIES)} (or '' for none)")
    return ",".join(name for name in DIFFAUG_POLICIES if name in names)


# --recipe: named sets of training settings, applied over the dataset's dict and under the command line.
# "paper": Radford et al.'s DCGAN exactly (no averaged G, hard labels, one learning rate).
RECIPES = {"default": {}, "paper": dict(ema_decay=0.0, real_label=1.0, diffaug="", d_contrastive=0.0, lr=2e-4,
                                        lr_d=None)}

DATASET_NAMES = tuple(CONFIGS)  # src/data/options.py's DATASETS, the built-in demo first
DEFAULT_DATASET = "digits"
# Where and how a new run executes, unless the command line says otherwise. The parser's own defaults are None, so
# a resumed run can tell a flag given on its command line from one left out (left out: the saved value stays).
RUN_DEFAULTS = dict(device_target="CPU", device_id=0, mode="graph", run_distribute=False)


def train_parser():
    p = ArgumentParser(description="Train DCGAN (Radford et al. 2015) with MindSpore.")
    p.add_argument("--dataset", default=None,
                   help="one of: " + ", ".join(DATASET_NAMES) + f" (default: {DEFAULT_DATASET}, built in)")
    p.add_argument("--data_path", default=None, help="dataset location (not needed for digits and fake)")
    p.add_argument("--output_path", default="./runs/dcgan", help="the run directory (created if missing)")
    p.add_argument("--device_target", default=None, help="CPU (default), GPU or Ascend")
    p.add_argument("--device_id", type=int, default=None, help="device number (default 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run found in --output_path with its saved settings (the directory named "
                        "here is the run, wherever it was first trained)")
    p.add_argument("--allow_data_change", action="store_true", default=None,
                   help="with --resume: continue on other data than the run trained on (refused otherwise); "
                        "the best-checkpoint comparison starts again, since the reference images changed")
    p.add_argument("--run_distribute", action="store_true", default=None,
                   help="data-parallel training; start it with scripts/run_distribute_train*.sh")
    p.add_argument("--netG", default=None, help="warm-start the generator from this checkpoint")
    p.add_argument("--netD", default=None, help="warm-start the discriminator from this checkpoint")
    p.add_argument("--mode", choices=("graph", "pynative"), default=None,
                   help="MindSpore execution mode (default graph)")
    p.add_argument("--strict", action=argparse.BooleanOptionalAction, default=None,
                   help="stop at the first unreadable image file (default: skip such files and count them in the log; "
                        "--no-strict turns it off again when resuming a --strict run)")
    p.add_argument("--split", choices=SPLITS, default=None,
                   help="train on this split of a dataset that has official ones (default: train; a directory "
                        "holding only one split trains on what it has)")
    p.add_argument("--amp_level", choices=("O0", "O1", "O2"), default=None,
                   help="O0: fp32 (default); O1/O2: mixed precision: on CPU bf16 convolutions (needs a CPU with "
                        "AVX512-BF16 or AMX), on GPU/Ascend float16 with dynamic loss scaling")
    p.add_argument("--fast_cpu", choices=("on", "off"), default=None,
                   help="on CPU, use the faster equivalent conv and activation layers (default on); "
                        "off: the plain nn layers")
    ints = ("epoch_size", "batch_size", "image_size", "nz", "ngf", "ndf", "nc", "seed", "max_steps", "log_interval",
            "sample_interval", "save_checkpoint_steps", "keep_checkpoint_max", "num_parallel_workers",
            "metrics_interval", "metrics_num_images")
    for name in ints:
        p.add_argument("--" + name, type=int, default=None)
    p.add_argument("--recipe", choices=tuple(RECIPES), default=None,
                   help="paper: the paper's DCGAN exactly (--lr 2e-4 for both networks, --ema_decay 0 "
                        "--real_label 1, no --diffaug, no --d_contrastive); default: this project's (G at twice D's "
                        "rate, averaged G)")
    p.add_argument("--lr", type=float, default=None,
                   help="G's Adam learning rate, and D's unless --lr_d is given (default 4e-4, D 2e-4; digits and "
                        "--recipe paper: 2e-4 for both)")
    p.add_argument("--lr_d", type=float, default=None, help="D's Adam learning rate")
    for name in ("beta1", "ema_decay", "real_label"):
        p.add_argument("--" + name, type=float, default=None)
    p.add_argument("--diffaug", default=None, metavar="POLICIES",
                   help="DiffAugment: augment every image D sees, real and fake, with these comma-separated "
                        f"policies ({', '.join(DIFFAUG_POLICIES)}; default none)")
    p.add_argument("--d_contrastive", type=float, default=None, metavar="WEIGHT",
                   help="D also learns SimCLR's contrastive task on two augmented views of each real image, with "
                        "this weight in its loss: better D features for verify.py (default 0: off)")
    return p


# What a resumed run may change on its command line (each change is logged). Every other setting defines the run
# (architecture, data, batch, seed, learning rates, ...): given with another value than the saved one, it is refused.
RESUMABLE_OVERRIDES = ("data_path", "run_distribute", "device_target", "device_id", "mode", "fast_cpu",
                       "epoch_size", "max_steps", "log_interval", "sample_interval", "save_checkpoint_steps",
                       "keep_checkpoint_max", "num_parallel_workers", "strict", "metrics_interval",
                       "metrics_num_images")


def parse_train_args(argv=None):
    return train_parser().parse_args(argv)


def resolve_train_config(args):
    """Merge the parsed command line over the dataset's dict and RUN_DEFAULTS. Returns a plain dict."""
    dataset = args.dataset or DEFAULT_DATASET
    if dataset not in DATASET_NAMES:
        raise UserError(f"unknown dataset '{dataset}'; choose one of: {', '.join(DATASET_NAMES)}")
    recipe = args.recipe or "default"
    cfg = {**RUN_DEFAULTS, **CONFIGS[dataset], **RECIPES[recipe]}
    cfg.update({k: v for k, v in vars(args).items() if v is not None or k not in cfg})
    cfg["dataset"], cfg["recipe"] = dataset, recipe
    if cfg.pop("allow_data_change", None):
        raise UserError("--allow_data_change is for --resume: a new run has no data to change from")
    if cfg.get("data_path"):
        cfg["data_path"] = os.path.abspath(cfg["data_path"])  # a resume from another directory finds it too
    check_config(cfg)
    cfg["data_fingerprint"] = data_fingerprint.fingerprint(dataset, cfg.get("data_path"), cfg["split"])
    return cfg


def check_config(cfg):
    if cfg["device_target"] not in DEVICE_TARGETS:
        raise UserError(f"unknown device target '{cfg['device_target']}'; choose one of: {', '.join(DEVICE_TARGETS)}")
    if cfg["image_size"] not in IMAGE_SIZES:
        raise UserError(f"image size {cfg['image_size']} is not supported; choose 32 or 64")
    if cfg["nc"] is not None and cfg["nc"] not in (1, 3):
        raise UserError(f"--nc must be 1 or 3, not {cfg['nc']}")
    if cfg["dataset"] not in BUILT_IN and not cfg["data_path"]:
        raise UserError(f"dataset '{cfg['dataset']}' needs --data_path")
    for name in ("batch_size", "epoch_size", "nz", "ngf", "ndf", "log_interval", "sample_interval",
                 "save_checkpoint_steps", "keep_checkpoint_max", "num_parallel_workers"):
        if cfg[name] < 1:
            raise UserError(f"--{name} must be at least 1, not {cfg[name]}")
    if cfg["max_steps"] < 0:
        raise UserError(f"--max_steps must be 0 (no cap) or positive, not {cfg['max_steps']}")
    if cfg.get("metrics_interval") is not None and cfg["metrics_interval"] < 0:
        raise UserError(f"--metrics_interval must be 0 (never) or positive, not {cfg['metrics_interval']}")
    if cfg.get("metrics_num_images", 1) < 2:
        raise UserError(f"--metrics_num_images must be at least 2, not {cfg['metrics_num_images']}")
    if not 0 <= (cfg.get("ema_decay") or 0.0) < 1:  # None (a run saved without EMA): off
        raise UserError(f"--ema_decay must be in [0, 1) (0: off), not {cfg['ema_decay']}")
    real_label = cfg.get("real_label")
    if real_label is not None and not 0.5 < real_label <= 1:  # None: a run saved before the option (1)
        raise UserError(f"--real_label must be in (0.5, 1] (1: no label smoothing), not {cfg['real_label']}")
    cfg["diffaug"] = parse_diffaug(cfg.get("diffaug"))
    if not 0 <= (cfg.get("d_contrastive") or 0.0) <= MAX_CONTRASTIVE_WEIGHT:  # None: a run saved before it (0)
        raise UserError(f"--d_contrastive must be in [0, {MAX_CONTRASTIVE_WEIGHT:g}] (0: off), "
                        f"not {cfg['d_contrastive']}")
    if cfg.get("lr_d") is not None and not cfg["lr_d"] > 0:
        raise UserError(f"--lr_d must be positive, not {cfg['lr_d']}")
    if not (cfg["lr"] > 0 and 0 <= cfg["beta1"] < 1):
        raise UserError(f"need --lr > 0 and 0 <= --beta1 < 1 (got {cfg['lr']}, {cfg['beta1']})")
    check_seed(cfg["seed"])
    if amp_level(cfg) not in AMP_LEVELS:
        raise UserError(f"--amp_level must be one of {', '.join(AMP_LEVELS)}, not {cfg['amp_level']!r}")
    if cfg.get("metrics_interval") != 0:  # 0: never measured, so any count is harmless
        check_memory(measurement_bytes(cfg.get("metrics_num_images", 1000), cfg["image_size"]),
                     f"--metrics_num_images {cfg.get('metrics_num_images', 1000)}")


def measurement_bytes(num_images, image_size):
    """A quality measurement's peak memory, roughly: its float32 images (3 channels at most) held ~4 times over
    (generated, converted for each metric, their features), plus the reference set (at most 10,000 images)."""
    return (4 * num_images + 10_000) * 3 * image_size * image_size * 4


# The saved settings a resume cannot do without, and the type each saved setting must have: a config.json
# damaged into valid JSON of another shape is refused with one line instead of failing deep inside training.
REQUIRED_SAVED = ("dataset", "image_size", "nz", "ngf", "ndf", "batch_size", "lr", "beta1", "seed", "epoch_size")
SAVED_TYPES = {"dataset": str, "data_path": (str, type(None)), "split": str, "device_target": str, "mode": str,
               "fast_cpu": str, "device_id": int, "run_distribute": bool, "strict": bool, "nc": (int, type(None)),
               "lr": (int, float), "beta1": (int, float), "lr_d": (int, float, type(None)),
               "ema_decay": (int, float, type(None)), "metrics_interval": (int, type(None)),
               "data_fingerprint": (dict, type(None)), "data_changes": list, "data": dict,
               "amp_level": (str, type(None)),
               "real_label": (int, float, type(None)), "recipe": (str, type(None)), "diffaug": (str, type(None)),
               "d_contrastive": (int, float, type(None))}


def check_saved(saved, path):
    """Refuse a saved config that lacks a setting a resume needs or holds one of the wrong type (UserError)."""
    missing = [key for key in REQUIRED_SAVED if key not in saved]
    if missing:
        raise UserError(f"cannot resume: {path} lacks {', '.join(missing)} (damaged?); "
                        "start a new run in another --output_path")
    ints = {name for name, value in COMMON.items() if isinstance(value, int) and not isinstance(value, bool)}
    for key, value in saved.items():
        wanted = int if key in ints else SAVED_TYPES.get(key)
        if wanted is None:
            continue
        plain_int = wanted is int and isinstance(value, bool)  # JSON true is no batch size
        if plain_int or not isinstance(value, wanted):
            raise UserError(f"cannot resume: {path} has {key}={json_text(value)}, not a valid value (damaged?); "
                            "start a new run in another --output_path")


def json_text(value, limit=40):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def resume_config(saved, args):
    """The config of a resumed run and the changes to log: every saved setting comes back unless the command line
    names it; a RESUMABLE_OVERRIDES flag then changes it, any other flag with another value is a UserError.

    The run directory is the one on the command line (args.output_path), never the one config.json recorded: a
    moved, copied or renamed run resumes where it is. Resuming on data whose fingerprint differs from the saved one
    is refused unless args.allow_data_change; then the change is recorded (data_changes) and the best-checkpoint
    comparison starts again (src/run/directory.py read_quality)."""
    check_saved(saved, os.path.join(args.output_path, "config.json"))
    # Runs saved before --split existed read train and test together: resume them on the same images.
    # Runs saved before --amp_level, --recipe, --real_label, --diffaug and --d_contrastive existed trained in fp32
    # with hard labels, no augmentation and the paper's D.
    cfg = {"split": "all", "amp_level": "O0", "recipe": "default", "real_label": 1.0, "diffaug": "",
           "d_contrastive": 0.0, **RUN_DEFAULTS, **saved, "resume": True, "netG": None, "netD": None}
    changes = []
    old_path = cfg.get("output_path")
    cfg["output_path"] = args.output_path
    if isinstance(old_path, str) and os.path.abspath(old_path) != os.path.abspath(args.output_path):
        changes.append(f"resume: the run directory was {old_path}; it is now {args.output_path}")
    if args.data_path:
        args.data_path = os.path.abspath(args.data_path)
    for key, value in vars(args).items():
        if value is None or key in ("resume", "output_path", "allow_data_change"):
            continue
        if key in ("netG", "netD"):
            raise UserError(f"--{key} warm-starts a new run; a resumed run continues from its own checkpoint")
        if key == "dataset" and value == "auto":  # the launchers say auto; the run saved what was detected
            continue
        old = cfg.get(key)
        if value == old:
            continue
        if key not in RESUMABLE_OVERRIDES:
            raise UserError(f"--{key} {value} cannot change when resuming: this run has {key}={old} "
                            f"(leave --{key} out, or start a new run in another --output_path)")
        changes.append(f"resume: {key} {old} -> {value}")
        cfg[key] = value
    check_config(cfg)
    changes += check_same_data(cfg, bool(getattr(args, "allow_data_change", None)))
    return cfg, changes


def check_same_data(cfg, allowed):
    """Compare the data the run will read with the fingerprint it saved; store the new one. Returns log lines."""
    saved = cfg.get("data_fingerprint")
    current = data_fingerprint.fingerprint(cfg["dataset"], cfg.get("data_path"), cfg.get("split", "train"))
    if current is None:
        return []  # the path cannot be listed: the dataset reader reports it, and the saved fingerprint stays
    cfg["data_fingerprint"] = current
    if not isinstance(saved, dict):
        return [f"resume: data fingerprint recorded: {data_fingerprint.describe(current)}"]
    if data_fingerprint.same_data(saved, current):
        return []
    if not allowed:
        raise UserError(f"this run trained on {data_fingerprint.describe(saved)}, but the data now is "
                        f"{data_fingerprint.describe(current)}; resume with --allow_data_change to continue on "
                        "it anyway (the best-checkpoint comparison then starts again)")
    cfg["data_changes"] = list(cfg.get("data_changes") or []) + [{"from": saved, "to": current}]
    return [f"resume: the data changed from {data_fingerprint.describe(saved)} to "
            f"{data_fingerprint.describe(current)} (--allow_data_change); quality measurements from before the "
            "change no longer compete for the best checkpoint"]
