"""Checkpoints of a run: G and D each loadable on its own, plus the full training state for --resume.

At every save the run directory's ckpt/ folder receives three MindSpore checkpoints for one step N:
  generator_N.ckpt      the G that is sampled: G itself, or with --ema_decay the moving average of its weights
                        (src/ema.py); weights, BN statistics + its architecture (image_size, nz, ngf, nc, ema_decay)
  discriminator_N.ckpt  D's weights and BN statistics + its architecture (image_size, ndf, nc)
  train_state_N.ckpt    G, D, both Adam states, the averaged G (with --ema_decay), the fixed noise, step, seed
Each file is written under a temporary name, flushed to disk and renamed, and the training state is written last
and read back before older sets are rotated away, so a kill or a full disk at any moment leaves the previous
complete set in place. CRC checks are on: a damaged file (a kill, a full disk, bit rot) is detected on resume and
the newest intact training state is used instead.
"""
import glob
import os

import mindspore as ms

from src.run import directory as rundir
from src.cpu.device import captured_stderr
from src.errors import UserError

CKPT_DIR = rundir.CKPT_DIR
KINDS = ("generator", "discriminator", "train_state")


def ckpt_path(run_dir, kind, step):
    return os.path.join(run_dir, CKPT_DIR, f"{kind}_{step:08d}.ckpt")


def saved_steps(run_dir, kind="train_state"):
    """Steps for which `kind` checkpoints exist, oldest first."""
    names = (rundir.checkpoint_step(path) for path in glob.glob(os.path.join(run_dir, CKPT_DIR, f"{kind}_*.ckpt")))
    return sorted(step for name in names if name and name[0] == kind for step in name[1:])


TMP_SUFFIX = ".tmp.ckpt"
# MindSpore's own temporary name for a checkpoint it is writing: for our "x.tmp.ckpt", "x.tmp.tmp".
MINDSPORE_TMP_SUFFIX = ".tmp.tmp"
PARTIAL_SUFFIXES = (TMP_SUFFIX, MINDSPORE_TMP_SUFFIX)


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def atomic_save(save_obj, path, append_dict=None):
    """Write a checkpoint to a temporary name, flush it to disk, then rename it: a crash never leaves a
    half-written `path`. A failed write (a full disk) removes the temporary file and is a UserError."""
    tmp = path[:-len(".ckpt")] + TMP_SUFFIX
    try:
        with captured_stderr():  # on a full disk MindSpore logs a CRITICAL page; our one line says it
            ms.save_checkpoint(save_obj, tmp, append_dict=append_dict, crc_check=True)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        directory = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself reaches the disk
        finally:
            os.close(directory)
    except (OSError, RuntimeError, ValueError) as error:
        for partial in (tmp, path[:-len(".ckpt")] + MINDSPORE_TMP_SUFFIX):  # ours and MindSpore's own
            _remove_quietly(partial)
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise UserError(f"cannot save checkpoint {path}: {reason} (disk full?); earlier checkpoints are kept") \
            from None


def remove_partial_files(run_dir):
    """Delete temporary files left by a save that was killed (ours and MindSpore's own temporary names); they never
    replaced a checkpoint."""
    for suffix in PARTIAL_SUFFIXES:
        for path in glob.glob(os.path.join(run_dir, CKPT_DIR, "*" + suffix)):
            _remove_quietly(path)


LOSS_SCALE_GROUP = "loss_scale"
PROJECTION_HEAD_PREFIX = "projection."  # D's --d_contrastive head (src/discriminator.py), optional in a warm start


def network_entries(net):
    """(name, parameter) of every weight and BN statistic, named by position in the network ('main.0.weight').

    MindSpore renames parameters when a network is placed inside another cell or compiled ('netG.main.0.weight'),
    so checkpoints use these structural names, which stay the same however the network is wrapped.
    """
    return list(net.parameters_and_names())


def optimizer_entries(optimizer, net):
    """(name, parameter) of an Adam optimizer's state, the moments named after the weight they belong to."""
    weight_names = {id(p): name for name, p in net.parameters_and_names()}
    entries = [(name, getattr(optimizer, name)) for name in ("global_step", "beta1_power", "beta2_power")]
    for slot in ("moment1", "moment2"):
        entries += [(f"{slot}.{weight_names[id(p)]}", moment)
                    for p, moment in zip(optimizer.parameters, getattr(optimizer, slot))]
    return entries


def state_entries(netG, netD, optimizerG, optimizerD, averagedG=None):
    """Every parameter of the training state, with group prefixes (the two optimizers share slot names)."""
    groups = {"G": network_entries(netG), "D": network_entries(netD),
              "optG": optimizer_entries(optimizerG, netG), "optD": optimizer_entries(optimizerD, netD)}
    if averagedG is not None:
        groups["EMA"] = network_entries(averagedG)
    return [(f"{group}/{name}", p) for group, entries in groups.items() for name, p in entries]


def as_save_list(entries):
    return [{"name": name, "data": p} for name, p in entries]


def save_training_checkpoint(run_dir, step, cfg, netG, netD, optimizerG, optimizerD, fixed_noise, averagedG=None,
                             loss_scales=()):
    """Save the three checkpoints of `step`. With `averagedG` (the EMA of G), generator_N.ckpt holds it;
    loss_scales: (name, parameter) of float16 training's loss scales (src/step_cells.py), kept in train_state."""
    os.makedirs(os.path.join(run_dir, CKPT_DIR), exist_ok=True)
    g_arch = {"net": "G", "image_size": cfg["image_size"], "nz": cfg["nz"], "ngf": cfg["ngf"], "nc": cfg["nc"]}
    d_arch = {"net": "D", "image_size": cfg["image_size"], "ndf": cfg["ndf"], "nc": cfg["nc"]}
    sampled = netG if averagedG is None else averagedG
    atomic_save(as_save_list(network_entries(sampled)), ckpt_path(run_dir, "generator", step),
                append_dict=dict(g_arch, step=step, ema_decay=float(cfg.get("ema_decay") or 0.0)))
    atomic_save(as_save_list(network_entries(netD)), ckpt_path(run_dir, "discriminator", step),
                append_dict=dict(d_arch, step=step))
    state = as_save_list(state_entries(netG, netD, optimizerG, optimizerD, averagedG))
    state += as_save_list((f"{LOSS_SCALE_GROUP}/{name}", p) for name, p in loss_scales)
    state.append({"name": "fixed_noise", "data": fixed_noise})
    path = ckpt_path(run_dir, "train_state", step)
    atomic_save(state, path, append_dict={"step": step, "seed": cfg["seed"]})
    read_checkpoint(path)  # read back (CRC) before remove_old_checkpoints may delete the previous set


def remove_old_checkpoints(run_dir, keep, protected=()):
    """Keep the newest `keep` complete sets of checkpoints, and those of the `protected` steps (the best one)."""
    for step in saved_steps(run_dir)[:-keep]:
        if step in protected:
            continue
        for kind in KINDS:
            _remove_quietly(ckpt_path(run_dir, kind, step))


class UnreadableCheckpoint(UserError):
    """A checkpoint file that is missing (rotated away, deleted) or damaged."""


def read_checkpoint(path):
    """Load a checkpoint file into a dict; a missing or damaged file is an UnreadableCheckpoint naming it."""
    if not os.path.isfile(path):
        raise UnreadableCheckpoint(f"checkpoint not found: {path}")
    try:
        return ms.load_checkpoint(path, crc_check=True)
    except Exception as error:  # noqa: BLE001 - whatever MindSpore raises on damaged bytes, the file is unreadable
        text = str(error).strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        raise UnreadableCheckpoint(f"cannot read checkpoint {path}: {reason}") from None


def assign(entries, params, source):
    """Copy `params[name]` into each (name, parameter) of `entries`, refusing a missing or mis-shaped one."""
    for name, p in entries:
        if name not in params:
            raise UserError(f"{source} has no parameter '{name}': it is not a checkpoint of this network")
        value = params[name]
        if tuple(value.shape) != tuple(p.shape):
            raise UserError(f"{source}: parameter '{name}' has shape {tuple(value.shape)}, this network needs "
                            f"{tuple(p.shape)} (a checkpoint of another image size, width or nc?)")
    for name, p in entries:
        p.set_data(ms.Tensor(params[name].asnumpy(), p.dtype))


def load_training_state(path, netG, netD, optimizerG, optimizerD, averagedG=None, loss_scales=()):
    """Restore G, D, both optimizers, the averaged G and the loss scales (when given) from a train_state file.
    Returns (step, fixed_noise numpy)."""
    params = read_checkpoint(path)
    assign(state_entries(netG, netD, optimizerG, optimizerD, averagedG), params, path)
    # Loss scales saved before they were checkpointed are missing: those start again from their initial value.
    scales = [(f"{LOSS_SCALE_GROUP}/{name}", p) for name, p in loss_scales]
    assign([(name, p) for name, p in scales if name in params], params, path)
    return int(params["step"].asnumpy()), params["fixed_noise"].asnumpy()


def latest_training_state(run_dir, warn):
    """Path of the newest train_state that reads back intact (CRC); damaged ones are reported through `warn`
    and skipped. None when the run has no checkpoint yet; a UserError when all of them are damaged."""
    steps = saved_steps(run_dir)
    for step in reversed(steps):
        path = ckpt_path(run_dir, "train_state", step)
        try:
            read_checkpoint(path)
            return path
        except UserError as error:
            warn(f"warning: {error}; trying the previous checkpoint")
    if not steps:
        return None
    raise UserError(f"no intact checkpoint to resume from in {os.path.join(run_dir, CKPT_DIR)}; "
                    "the damaged files are left in place")


def load_network(path, net):
    """Warm-start or evaluate: load a generator_/discriminator_ checkpoint into `net`. A checkpoint's extra entries
    are left alone (a --d_contrastive D's projection head, for tools that build D without it), and a D with the head
    takes a checkpoint without one (a warm start): the head keeps its initial weights."""
    params = read_checkpoint(path)
    entries = [(name, p) for name, p in network_entries(net)
               if name in params or not name.startswith(PROJECTION_HEAD_PREFIX)]
    assign(entries, params, path)


def network_architecture(path):
    """The architecture stored in a generator_/discriminator_ checkpoint, as a dict of ints (plus 'net')."""
    params = read_checkpoint(path)
    arch = {}
    for key in ("net", "image_size", "nz", "ngf", "ndf", "nc"):
        if key in params:
            value = params[key]
            arch[key] = value if isinstance(value, str) else int(value.asnumpy())
    if "ema_decay" in params:
        arch["ema_decay"] = round(float(params["ema_decay"].asnumpy()), 6)  # stored as float32
    return arch
