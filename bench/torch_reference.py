#!/usr/bin/env python3
"""PyTorch reference for the DCGAN training step: the anchor that the project's own benchmark is held against.

It builds the model-zoo DCGAN (for 32 px: G 100->8g->4g->2g->nc, D nc->2d->4d->8d->1, with g=ngf, d=ndf;
for 64 px one more stage each side), runs the standard step (D on real + detached fake, then G with
the non-saturating loss, BCE, Adam 2e-4 / beta1 0.5) and prints one JSON line with the median time
per step. Run it in the same shell, right before or after the project's benchmark, on the same
settings: the two medians' ratio is the figure that counts; absolute times on these machines are noisy.

needs: pip install torch==2.13.0   (in its own environment: PyTorch is a benchmark-only install, never a requirement)
usage: python bench/torch_reference.py [--batch_size 128] [--image_size 32] [--nc 3] [--ngf 64] [--ndf 64]
                                       [--steps 10] [--warmup 2] [--threads N] [--autocast bf16]
--autocast bf16: the step under torch.autocast("cpu", dtype=torch.bfloat16), as a PyTorch user with a CPU that has
native bf16 trains (the convolutions in bf16; weights, optimizer and BatchNorm in fp32).
"""
import argparse, contextlib, json, time
import torch
import torch.nn as nn


def generator(nz, ngf, nc, image_size):
    mult = {32: [8, 4, 2], 64: [8, 4, 2, 1]}[image_size]
    layers = [nn.ConvTranspose2d(nz, ngf * mult[0], 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * mult[0]), nn.ReLU(True)]
    for a, b in zip(mult, mult[1:]):
        layers += [nn.ConvTranspose2d(ngf * a, ngf * b, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * b), nn.ReLU(True)]
    layers += [nn.ConvTranspose2d(ngf * mult[-1], nc, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(ndf, nc, image_size):
    mult = {32: [2, 4, 8], 64: [1, 2, 4, 8]}[image_size]
    layers = [nn.Conv2d(nc, ndf * mult[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    for a, b in zip(mult, mult[1:]):
        layers += [nn.Conv2d(ndf * a, ndf * b, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * b), nn.LeakyReLU(0.2, True)]
    layers += [nn.Conv2d(ndf * mult[-1], 1, 4, 1, 0, bias=False), nn.Sigmoid()]
    return nn.Sequential(*layers)


def main():
    p = argparse.ArgumentParser()
    for name, default in [("batch_size", 128), ("image_size", 32), ("nc", 3), ("nz", 100), ("ngf", 64), ("ndf", 64),
                          ("steps", 10), ("warmup", 2), ("threads", 0)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--autocast", choices=("off", "bf16"), default="off")
    a = p.parse_args()
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.autocast == "bf16" else contextlib.nullcontext
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    g, d = generator(a.nz, a.ngf, a.nc, a.image_size), discriminator(a.ndf, a.nc, a.image_size)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    real = torch.rand(a.batch_size, a.nc, a.image_size, a.image_size) * 2 - 1

    def step():
        z = torch.randn(a.batch_size, a.nz, 1, 1)
        d.zero_grad(set_to_none=True)
        with autocast():
            out_real = d(real).view(-1).float()
            fake = g(z)
            out_fake = d(fake.detach()).view(-1).float()
        loss_d = bce(out_real, torch.ones_like(out_real)) + bce(out_fake, torch.zeros_like(out_fake))
        loss_d.backward()
        opt_d.step()
        g.zero_grad(set_to_none=True)
        with autocast():
            out = d(fake).view(-1).float()
        loss_g = bce(out, torch.ones_like(out))
        loss_g.backward()
        opt_g.step()
        return loss_d.item(), loss_g.item()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "autocast": a.autocast,
                      "threads": torch.get_num_threads(),
                      "batch_size": a.batch_size, "image_size": a.image_size, "nc": a.nc, "ngf": a.ngf, "ndf": a.ndf,
                      "median_ms": round(1000 * times[len(times) // 2], 1), "min_ms": round(1000 * times[0], 1),
                      "images_per_s": round(a.batch_size / times[len(times) // 2], 1)}))


if __name__ == "__main__":
    main()
