#!/usr/bin/env python3
"""The PyTorch reference for sample quality: PyTorch's examples/dcgan training loop on a prepared image array.

It trains the same DCGAN as bench/torch_reference.py (the model zoo's nets; weights N(0, 0.02), BatchNorm scale
N(1, 0.02) as examples/dcgan's weights_init), with examples/dcgan's step: D on a real batch (label 1) and a
detached fake batch (label 0), then G with the non-saturating loss, BCE, Adam lr 2e-4 / beta1 0.5. The data is
reshuffled every epoch and the last incomplete batch dropped, as this project's trainer does, so both make
the same number of steps. At the end it draws --num_images images from G as examples/dcgan leaves it, in both BatchNorm
modes (train mode, the batch statistics the example samples its fixed noise with, in batches of --batch_size; and
eval mode, the running statistics), and saves them, with the time the training took, to --out (.npz).

needs: pip install torch==2.13.0   (in its own environment: PyTorch is a benchmark-only install, never a requirement)
usage: python bench/torch_dcgan_train.py --images TRAIN.npy --steps 2340 --seed 0 --out samples.npz
       [--ngf 32] [--ndf 32] [--batch_size 128] [--num_images 10000] [--threads N]
TRAIN.npy: float32 (N, nc, S, S) in [-1, 1] (bench/quality_versus_pytorch.py writes it from this project's reader).
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn

from torch_reference import discriminator, generator


def weights_init(m):
    """examples/dcgan's initialisation."""
    name = m.__class__.__name__
    if "Conv" in name:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    for name, default in [("steps", 2340), ("seed", 0), ("batch_size", 128), ("nz", 100), ("ngf", 32), ("ndf", 32),
                          ("num_images", 10000), ("threads", 0)]:
        p.add_argument("--" + name, type=int, default=default)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    data = torch.from_numpy(np.load(a.images))
    nc, size = data.shape[1], data.shape[-1]
    netG, netD = generator(a.nz, a.ngf, nc, size), discriminator(a.ndf, nc, size)
    netG.apply(weights_init)
    netD.apply(weights_init)
    optG = torch.optim.Adam(netG.parameters(), 2e-4, betas=(0.5, 0.999))
    optD = torch.optim.Adam(netD.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    per_epoch = len(data) // a.batch_size
    order = torch.randperm(len(data))
    started = time.time()
    for step in range(a.steps):
        if step and step % per_epoch == 0:
            order = torch.randperm(len(data))
        i = step % per_epoch
        real = data[order[i * a.batch_size:(i + 1) * a.batch_size]]
        netD.zero_grad(set_to_none=True)
        out_real = netD(real).view(-1)
        fake = netG(torch.randn(a.batch_size, a.nz, 1, 1))
        out_fake = netD(fake.detach()).view(-1)
        loss_d = bce(out_real, torch.ones_like(out_real)) + bce(out_fake, torch.zeros_like(out_fake))
        loss_d.backward()
        optD.step()
        netG.zero_grad(set_to_none=True)
        out = netD(fake).view(-1)
        loss_g = bce(out, torch.ones_like(out))
        loss_g.backward()
        optG.step()
        if step % 500 == 0 or step == a.steps - 1:
            print(f"[{step + 1}/{a.steps}] loss_d {loss_d.item():.4f} loss_g {loss_g.item():.4f}", flush=True)
    seconds = time.time() - started

    z = torch.randn(a.num_images, a.nz, 1, 1, generator=torch.Generator().manual_seed(1000 + a.seed))
    samples = {}
    with torch.no_grad():
        for mode in ("train", "eval"):
            netG.train(mode == "train")
            samples[mode] = torch.cat([netG(z[i:i + a.batch_size]) for i in range(0, len(z), a.batch_size)]).numpy()
    np.savez(a.out, train_mode=samples["train"], eval_mode=samples["eval"], seconds=seconds)
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "seed": a.seed, "steps": a.steps, "seconds": round(seconds, 1), "out": a.out}))


if __name__ == "__main__":
    main()
