"""Checkpoints of a run: G and D each loadable on its own, plus the full training state for --resume.

At every save the run directory's ckpt/ folder receives three MindSpore checkpoints for one step N:
  generator_N.ckpt      G's weights and BN statistics + its architecture (image_size, nz, ngf, nc) for eval/export
  discriminator_N.ckpt  D's weights and BN statistics + its architecture (image_size, ndf, nc)
  train_state_N.ckpt    G, D, both Adam states, the fixed noise, step, epoch and seed
Each file is written under a temporary name and renamed, and the training state is written last, so the newest
train_state always has complete G and D files beside it. CRC checks are on, so a damaged file is detected on load.
"""
import glob
import os
import re

import mindspore as ms

from src.errors import UserError

CKPT_DIR = "ckpt"
KINDS = ("generator", "discriminator", "train_state")
# Groups of the training-state file; optimizers share parameter names (beta1_power, ...), hence the prefixes.
STATE_GROUPS = ("G", "D", "optG", "optD")


def ckpt_path(run_dir, kind, step):
    return os.path.join(run_dir, CKPT_DIR, f"{kind}_{step:08d}.ckpt")


def saved_steps(run_dir, kind="train_state"):
    """Steps for which `kind` checkpoints exist, oldest first."""
    steps = []
    for path in glob.glob(os.path.join(run_dir, CKPT_DIR, f"{kind}_*.ckpt")):
        match = re.fullmatch(rf"{kind}_(\d+)\.ckpt", os.path.basename(path))
        if match:
            steps.append(int(match.group(1)))
    return sorted(steps)


def atomic_save(save_obj, path, append_dict=None):
    """Write a checkpoint to a temporary name, then rename it: a crash never leaves a half-written `path`."""
    tmp = path[:-len(".ckpt")] + ".tmp.ckpt"
    ms.save_checkpoint(save_obj, tmp, append_dict=append_dict, crc_check=True)
    os.replace(tmp, path)


def save_training_checkpoint(run_dir, step, epoch, cfg, netG, netD, optimizerG, optimizerD, fixed_noise):
    """Save the three checkpoints of `step`."""
    os.makedirs(os.path.join(run_dir, CKPT_DIR), exist_ok=True)
    g_arch = {"net": "G", "image_size": cfg["image_size"], "nz": cfg["nz"], "ngf": cfg["ngf"], "nc": cfg["nc"]}
    d_arch = {"net": "D", "image_size": cfg["image_size"], "ndf": cfg["ndf"], "nc": cfg["nc"]}
    atomic_save(netG, ckpt_path(run_dir, "generator", step), append_dict=dict(g_arch, step=step))
    atomic_save(netD, ckpt_path(run_dir, "discriminator", step), append_dict=dict(d_arch, step=step))
    state = []
    for group, cell in zip(STATE_GROUPS, (netG, netD, optimizerG, optimizerD)):
        state += [{"name": f"{group}/{p.name}", "data": p} for p in cell.get_parameters()]
    state.append({"name": "fixed_noise", "data": fixed_noise})
    atomic_save(state, ckpt_path(run_dir, "train_state", step),
                append_dict={"step": step, "epoch": epoch, "seed": cfg["seed"]})


def remove_old_checkpoints(run_dir, keep):
    """Keep the newest `keep` complete sets of checkpoints."""
    for step in saved_steps(run_dir)[:-keep]:
        for kind in KINDS:
            path = ckpt_path(run_dir, kind, step)
            if os.path.exists(path):
                os.remove(path)


def read_checkpoint(path):
    """Load a checkpoint file into a dict; a missing or damaged file is a UserError naming it."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint not found: {path}")
    try:
        return ms.load_checkpoint(path, crc_check=True)
    except (ValueError, RuntimeError, TypeError) as error:
        raise UserError(f"cannot read checkpoint {path}: {str(error).splitlines()[0]}") from None


def load_into(cell, params, source):
    """Load `params` into `cell`, refusing any missing or mis-shaped parameter with a message naming it."""
    for p in cell.get_parameters():
        if p.name not in params:
            raise UserError(f"{source} has no parameter '{p.name}': it is not a checkpoint of this network")
        if tuple(params[p.name].shape) != tuple(p.shape):
            raise UserError(f"{source}: parameter '{p.name}' has shape {tuple(params[p.name].shape)}, "
                            f"this network needs {tuple(p.shape)} (another image size or width?)")
    ms.load_param_into_net(cell, {p.name: params[p.name] for p in cell.get_parameters()}, strict_load=True)


def load_training_state(path, netG, netD, optimizerG, optimizerD):
    """Restore G, D and both optimizers from a train_state file. Returns (step, epoch, fixed_noise numpy)."""
    params = read_checkpoint(path)
    for group, cell in zip(STATE_GROUPS, (netG, netD, optimizerG, optimizerD)):
        prefix = group + "/"
        load_into(cell, {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}, path)
    return int(params["step"].asnumpy()), int(params["epoch"].asnumpy()), params["fixed_noise"].asnumpy()


def load_network(path, net):
    """Warm-start or evaluate: load a generator_/discriminator_ checkpoint (or any checkpoint of `net`)."""
    load_into(net, read_checkpoint(path), path)


def network_architecture(path):
    """The architecture stored in a generator_/discriminator_ checkpoint, as a dict of ints (plus 'net')."""
    params = read_checkpoint(path)
    arch = {}
    for key in ("net", "image_size", "nz", "ngf", "ndf", "nc"):
        if key in params:
            value = params[key]
            arch[key] = value if isinstance(value, str) else int(value.asnumpy())
    return arch
