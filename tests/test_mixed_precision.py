"""--amp_level: bf16 convolutions on CPUs with native bf16, float16 with a dynamic loss scale per network elsewhere.

bf16 keeps 8 significant bits (7 stored + 1 implicit): rounding an fp32 value to bf16 changes it by at most
u = 2^-8 of its magnitude. A product of two rounded operands is then off by at most ~2u of |a||b|, and a sum of
such products accumulated in fp32 by at most ~2u of the sum of their magnitudes. The bf16 convolutions are checked
against that bound, element by element. Tests that run the bf16 kernels do it in a fresh process at oneDNN's full
instruction set (conftest caps this process at AVX2, where oneDNN has no native bf16).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import mindspore as ms
import mindspore.nn as nn

from src.contrastive import ContrastiveLoss
from src.config import parse_train_args, resolve_train_config, resume_config
from src.cpu import bf16
from src.discriminator import Discriminator
from src.errors import UserError
from src.generator import Generator
from src.mixed_precision import apply_to_networks, check_amp_level
from src.step_cells import step_cells
from src.dcgan import DCGAN
from src.weight_init import init_weights
from tests.cli import train, user_env

ms.set_context(mode=ms.GRAPH_MODE)

BF16_UNIT = 2.0 ** -8  # the relative rounding error of bf16
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
native = bf16.cpu_flags() is not None and bool(bf16.cpu_flags() & set(bf16.NATIVE_FLAGS))
needs_native_bf16 = pytest.mark.skipif(not native, reason="this CPU has no native bf16")


def in_fresh_process(function):
    """Run tests.test_mixed_precision.<function>() in a new process at oneDNN's full instruction set."""
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="ALL", PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", f"from tests.test_mixed_precision import {function}; {function}()"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout[-2000:] + done.stderr[-3000:]


# ---------------------------------------------------------------------------------------------------------------
# bf16 on CPU

def bf16_route(kind, in_channels, output_pixels):
    """How the bf16 kernels compute pass `kind` of a 4x4 stride-2 convolution: "bf16" (oneDNN's bf16 kernel) or
    "bf16 product" (bf16_route in src/cpu/kernels/conv_gemm.cc)."""
    import ctypes
    from src.cpu import kernels
    code = ctypes.CDLL(kernels.library()).DnnlBf16Route(
        ("ConvFwd", "ConvBwdData", "ConvBwdWeights").index(kind), ctypes.c_int64(in_channels),
        ctypes.c_int64(output_pixels[0]), ctypes.c_int64(output_pixels[1]))
    return {1: "bf16", 2: "bf16 product"}[code]


def bf16_convolutions_within_their_rounding_bound():
    import mindspore.ops as ops
    from src.cpu.fast_layers import DnnlConv2d, DnnlConv2dTranspose
    rng = np.random.default_rng(5)
    routes = set()
    # D's layers and G's (transposed) ones at every size the routes tell apart: 1-4 and 16+ channels, 8x8 and 4x4
    # output pixels.
    for cls, cin, cout, shape in ((DnnlConv2d, 3, 32, (8, 32, 32, 3)), (DnnlConv2d, 32, 64, (8, 16, 16, 32)),
                                  (DnnlConv2d, 64, 128, (8, 8, 8, 64)),
                                  (DnnlConv2dTranspose, 128, 64, (8, 4, 4, 128)),
                                  (DnnlConv2dTranspose, 64, 32, (8, 8, 8, 64)),
                                  (DnnlConv2dTranspose, 32, 1, (8, 16, 16, 32))):
        exact, low = cls(cin, cout, 4, 2, 1), cls(cin, cout, 4, 2, 1, bf16=True)
        assert exact.dnnl and low.dnnl
        w = rng.normal(0, 0.02, exact.weight.shape).astype(np.float32)
        x = rng.normal(0, 1, shape).astype(np.float32)

        def outputs(layer, x, w, dy=None):
            """(y, dx, dw) for the loss sum(y * dy)."""
            layer.weight.set_data(ms.Tensor(w))
            y = layer(ms.Tensor(x))
            if dy is None:
                return y.asnumpy()
            grad = ops.GradOperation(get_all=True, get_by_list=True, sens_param=True)
            dx, dw = grad(layer, layer.trainable_params())(ms.Tensor(x), ms.Tensor(dy))
            return y.asnumpy(), dx[0].asnumpy(), dw[0].asnumpy()

        dy = rng.normal(0, 1, outputs(exact, x, w).shape).astype(np.float32)
        ref, got = outputs(exact, x, w, dy), outputs(low, x, w, dy)
        # The same linear maps applied to magnitudes: the sum of |terms| behind every element of y, dx and dw.
        scale = outputs(exact, np.abs(x), np.abs(w), np.abs(dy))
        # Which route each pass took (the convolution behind a transposed one has its output channels as input
        # channels and its input as output pixels; its forward is a backward-data pass).
        if cls is DnnlConv2d:
            kinds, channels, pixels = ("ConvFwd", "ConvBwdData", "ConvBwdWeights"), cin, (shape[1] // 2, shape[2] // 2)
        else:
            kinds, channels, pixels = ("ConvBwdData", "ConvFwd", "ConvBwdWeights"), cout, shape[1:3]
        routes.update((kind, bf16_route(kind, channels, pixels)) for kind in kinds)
        for name, r, g, s in zip(("forward", "input gradient", "weight gradient"), ref, got, scale):
            assert g.dtype == np.float32
            error = np.abs(g - r)
            bound = 2.05 * BF16_UNIT * s + 1e-6 * np.abs(s).max()  # 2u, plus fp32 accumulation's own rounding
            assert np.all(error <= bound), (cls.__name__, name, float((error / (bound + 1e-30)).max()))
            assert error.max() > 0, (cls.__name__, name, "identical to fp32: bf16 did not run")
    if "amx_bf16" in bf16.cpu_flags():  # oneDNN's bf16 kernels for every pass
        assert {route for _, route in routes} == {"bf16"}, routes
    else:  # both routes of the forward and backward-data passes were checked; the weight gradient has one
        assert routes == {(kind, route) for kind in ("ConvFwd", "ConvBwdData") for route in ("bf16", "bf16 product")} | {
            ("ConvBwdWeights", "bf16 product")}, routes
    print("ok")


@needs_native_bf16
def test_bf16_convolutions_stay_within_bf16_rounding_of_fp32():
    in_fresh_process("bf16_convolutions_within_their_rounding_bound")


def one_bf16_step_against_fp32():
    from src.layers import CpuLayers
    results = []
    for low in (False, True):
        layers = CpuLayers(bf16=low)
        netG, netD = Generator(32, 16, 16, 1, layers=layers), Discriminator(32, 16, 1, layers=layers)
        rng = np.random.default_rng(3)
        init_weights(netG, rng)
        init_weights(netD, rng)
        optG = nn.Adam(netG.trainable_params(), 2e-4, beta1=0.5)
        optD = nn.Adam(netD.trainable_params(), 2e-4, beta1=0.5)
        step = DCGAN(*step_cells(netG, netD, optG, optD))
        step.set_train(True)
        data = np.random.default_rng(0)
        real = ms.Tensor(data.uniform(-1, 1, (16, 1, 32, 32)).astype(np.float32))
        z = ms.Tensor(data.standard_normal((16, 16, 1, 1)).astype(np.float32))
        out = [float(o.asnumpy()) for o in step(real, z)]
        params = {p.name: p.asnumpy() for p in list(netG.get_parameters()) + list(netD.get_parameters())}
        assert all(p.dtype == np.float32 for p in params.values())  # weights and BN statistics stay fp32
        results.append((out, params))
    (ref, ref_params), (got, got_params) = results
    # Each of the step's 8 convolutions (G 3 on the kernels + D 3, forward and back) adds at most ~2u of relative
    # error in magnitude; the losses and D's probabilities are compared at 8 * 2u.
    np.testing.assert_allclose(got, ref, rtol=8 * 2 * BF16_UNIT)
    assert got != ref  # bf16 ran
    # Adam's first step moves each weight by lr (2e-4) in the direction of its gradient's sign, whatever its size:
    # bf16 can flip the sign of a gradient near 0 (a difference of 2 lr), and only of a few.
    lr = 2e-4
    for name, value in ref_params.items():
        difference = np.abs(got_params[name] - value)
        assert difference.max() <= 2 * lr * 1.001, name
        assert (difference > lr).mean() < 0.1, name
    print("ok")


@needs_native_bf16
def test_one_bf16_step_agrees_with_the_fp32_step():
    in_fresh_process("one_bf16_step_against_fp32")


@needs_native_bf16
def test_a_bf16_run_trains_and_its_digits_get_better(tmp_path):
    """A short bf16 run on the built-in digits: fp32 config and checkpoints, quality improving over the steps."""
    run = tmp_path / "run"
    done = train("--dataset", "digits", "--output_path", str(run), "--amp_level", "O1", "--max_steps", "63",
                 "--save_checkpoint_steps", "21", "--metrics_interval", "21", "--metrics_num_images", "300",
                 "--log_interval", "21", env=user_env())
    assert "precision: bf16 convolutions with fp32 accumulation (--amp_level O1)" in done.stdout
    assert json.loads((run / "config.json").read_text())["amp_level"] == "O1"
    assert "amp_level</th><td>O1</td>" in (run / "index.html").read_text()  # the report's configuration table
    quality = [json.loads(line) for line in (run / "quality.jsonl").read_text().splitlines()]
    cfid = {record["step"]: record["cfid"] for record in quality if "cfid" in record}
    assert sorted(cfid) == [21, 42, 63]
    assert cfid[63] < cfid[21], cfid
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["loss_g"] != metrics[-1]["loss_g"] and metrics[0]["loss_d"] != metrics[-1]["loss_d"]
    state = ms.load_checkpoint(str(run / "ckpt" / "train_state_00000063.ckpt"))
    assert all(p.dtype == ms.float32 for name, p in state.items()
               if name.startswith(("G/", "D/", "optG/", "optD/")) and not name.endswith("global_step"))


def config(*args):
    return resolve_train_config(parse_train_args(["--dataset", "fake", *args]))


def test_mixed_precision_is_refused_on_a_cpu_without_native_bf16(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw\n")
    monkeypatch.setattr(bf16, "CPUINFO", str(cpuinfo))
    assert "no native bf16" in bf16.native_bf16_problem()
    check_amp_level(config("--amp_level", "O0"))  # fp32 needs nothing
    check_amp_level(config("--amp_level", "O2", "--device_target", "GPU"))  # float16 on GPU: no CPU question
    with pytest.raises(UserError, match=r"--amp_level O1 needs native bf16: this CPU has no native bf16"):
        check_amp_level(config("--amp_level", "O1"))
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert bf16.cpu_flags(str(cpuinfo)) == {"fpu", "avx512f", "avx512_bf16"}


@pytest.mark.parametrize("args, env, message", [
    (["--fast_cpu", "off"], {}, "error: --amp_level O2 on CPU computes the convolutions in bf16 on the project's "
                                "kernels, which --fast_cpu off turns off"),
    ([], {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, "error: --amp_level O2 needs native bf16: oneDNN does not run bf16 "
                                                "natively here"),
])
def test_train_refuses_mixed_precision_it_cannot_run_natively_before_any_work(tmp_path, args, env, message):
    run = tmp_path / "run"
    done = train("--dataset", "digits", "--output_path", str(run), "--amp_level", "O2", *args, check=False,
                 env=user_env(**env))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(message), done.stderr
    assert not run.exists()


def test_amp_level_is_saved_and_fixed_when_resuming():
    saved = dict(config("--amp_level", "O1"), output_path="run")
    assert saved["amp_level"] == "O1"
    cfg, changes = resume_config(saved, parse_train_args(["--resume", "--output_path", "run"]))
    assert cfg["amp_level"] == "O1" and changes == []
    same, _ = resume_config(saved, parse_train_args(["--resume", "--output_path", "run", "--amp_level", "O1"]))
    assert same["amp_level"] == "O1"
    with pytest.raises(UserError, match=r"--amp_level O0 cannot change when resuming: this run has amp_level=O1"):
        resume_config(saved, parse_train_args(["--resume", "--output_path", "run", "--amp_level", "O0"]))
    older = {k: v for k, v in saved.items() if k != "amp_level"}  # a run saved before --amp_level: fp32
    assert resume_config(older, parse_train_args(["--resume", "--output_path", "run"]))[0]["amp_level"] == "O0"
    with pytest.raises(UserError, match="cannot change when resuming"):
        resume_config(older, parse_train_args(["--resume", "--output_path", "run", "--amp_level", "O2"]))


@needs_native_bf16
def test_a_resumed_bf16_run_keeps_its_amp_level_and_refuses_another(tmp_path):
    run = str(tmp_path / "run")
    common = ["--ngf", "8", "--ndf", "8", "--nz", "16", "--batch_size", "4", "--log_interval", "1"]
    train("--dataset", "fake", "--output_path", run, "--amp_level", "O1", "--max_steps", "2", *common)
    refused = train("--resume", "--output_path", run, "--amp_level", "O0", check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: --amp_level O0 cannot change when resuming: this run has amp_level=O1 (leave --amp_level out, or "
        "start a new run in another --output_path)"]
    resumed = train("--resume", "--output_path", run, "--max_steps", "3")
    assert "precision: bf16 convolutions" in resumed.stdout and "at step 2" in resumed.stdout
    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["amp_level"] == "O1"


# ---------------------------------------------------------------------------------------------------------------
# float16 with loss scaling (GPU/Ascend): the scaler and the step skipping, run on CPU

def loss_scaled_step(scale_window=1000, amp_level=None, d_contrastive=0.0):
    netG, netD = Generator(32, 16, 8, 1), Discriminator(32, 8, 1, projection_head=d_contrastive > 0)
    rng = np.random.default_rng(3)
    init_weights(netG, rng)
    init_weights(netD, rng)
    optG = nn.Adam(netG.trainable_params(), 2e-4, beta1=0.5)
    optD = nn.Adam(netD.trainable_params(), 2e-4, beta1=0.5)
    stepG, stepD = netG, netD
    if amp_level:  # as src/networks.py trains them: float16 cells holding the fp32 nets' very Parameters
        stepG, stepD = apply_to_networks({"amp_level": amp_level, "device_target": "GPU"}, netG, netD)
        assert stepG is not netG and stepD is not netD
        assert [id(p) for p in stepG.trainable_params()] == [id(p) for p in netG.trainable_params()]
    # As src/networks.py builds it: D's contrastive term on the fp32 D, whose Parameters the float16 D shares.
    contrastive = ContrastiveLoss(netD, d_contrastive, 32, seed=0) if d_contrastive else None
    train_d, train_g = step_cells(stepG, stepD, optG, optD, loss_scaled=True, contrastive=contrastive)
    if scale_window != 1000:
        for cell in (train_d, train_g):
            cell.loss_scaling_manager.scale_window = scale_window
    step = DCGAN(train_d, train_g)
    step.set_train(True)
    return step, netG, netD, optD


def snapshot(*nets_or_params):
    return [p.asnumpy().copy() for group in nets_or_params for p in group]


def test_an_overflowing_step_is_skipped_for_that_network_only_and_its_scale_lowered():
    step, netG, netD, optD = loss_scaled_step(scale_window=2)
    assert not step.fused  # the loss scales live in the step cells: the two-pass form
    data = np.random.default_rng(0)
    real = ms.Tensor(data.uniform(-1, 1, (8, 1, 32, 32)).astype(np.float32))
    z = ms.Tensor(data.standard_normal((8, 16, 1, 1)).astype(np.float32))
    # Force D's gradients to overflow: a loss scale so large that the scaled gradients are inf in fp32.
    step.train_d.scale_sense.set_data(ms.Tensor(3e38, ms.float32))
    d_before, adam_before, g_before = snapshot(netD.trainable_params()), snapshot(optD.moment1), \
        snapshot(netG.trainable_params())
    outputs = step(real, z)
    assert len(outputs) == 7
    overflow_d, overflow_g = bool(outputs[5].asnumpy()), bool(outputs[6].asnumpy())
    assert overflow_d and not overflow_g
    assert all(np.array_equal(a, b) for a, b in zip(d_before, snapshot(netD.trainable_params())))  # D skipped
    assert all(np.array_equal(a, b) for a, b in zip(adam_before, snapshot(optD.moment1)))
    assert not all(np.array_equal(a, b) for a, b in zip(g_before, snapshot(netG.trainable_params())))  # G stepped
    assert float(step.train_d.scale_sense.asnumpy()) == pytest.approx(1.5e38)  # halved
    assert float(step.train_g.scale_sense.asnumpy()) == 2.0 ** 16  # G's scale is its own
    # A sane scale again: D trains, and after scale_window (2) clean steps each scale doubles.
    step.train_d.scale_sense.set_data(ms.Tensor(1024.0, ms.float32))
    for _ in range(2):
        outputs = step(real, z)
        assert not bool(outputs[5].asnumpy()) and not bool(outputs[6].asnumpy())
    assert not all(np.array_equal(a, b) for a, b in zip(d_before, snapshot(netD.trainable_params())))
    assert float(step.train_d.scale_sense.asnumpy()) == 2048.0
    assert float(step.train_g.scale_sense.asnumpy()) == 2.0 ** 17


def test_loss_scaled_step_divides_the_scale_back_out():
    """Without overflow, the loss-scaled step cells train exactly as the plain ones (the scale is a power of 2)."""
    scaled, scaled_G, scaled_D, _ = loss_scaled_step()
    netG, netD = Generator(32, 16, 8, 1), Discriminator(32, 8, 1)
    rng = np.random.default_rng(3)
    init_weights(netG, rng)
    init_weights(netD, rng)
    plain = DCGAN(*step_cells(netG, netD, nn.Adam(netG.trainable_params(), 2e-4, beta1=0.5),
                              nn.Adam(netD.trainable_params(), 2e-4, beta1=0.5)), fused=False)
    plain.set_train(True)
    data = np.random.default_rng(1)
    for _ in range(2):
        real = ms.Tensor(data.uniform(-1, 1, (8, 1, 32, 32)).astype(np.float32))
        z = ms.Tensor(data.standard_normal((8, 16, 1, 1)).astype(np.float32))
        a, b = scaled(real, z), plain(real, z)
        np.testing.assert_allclose([float(x.asnumpy()) for x in a[:5]], [float(x.asnumpy()) for x in b],
                                   rtol=1e-5)
    for a, b in zip(scaled_G.trainable_params() + scaled_D.trainable_params(),
                    netG.trainable_params() + netD.trainable_params()):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-7, err_msg=a.name)


@pytest.mark.parametrize("d_contrastive", [0.0, 5.0])
def test_mindspore_amp_float16_runs_on_cpu_with_batch_norm_and_names_kept(d_contrastive):
    """What GPU/Ascend run (mindspore.amp O2, float16), run on CPU: same parameter names (checkpoints), fp32
    parameters, losses in fp32; the dynamic scale starts at 2^16 and comes down until the steps stop overflowing.
    With --d_contrastive too, and its projection head learns."""
    reference = [p.name for p in Generator(32, 16, 8, 1).get_parameters()]
    step, netG, netD, _ = loss_scaled_step(amp_level="O2", d_contrastive=d_contrastive)
    head = [p for name, p in netD.parameters_and_names() if name.startswith("projection.")]  # names kept by D
    head_before = snapshot(head)
    assert [p.name for p in netG.get_parameters()] == reference
    assert all(p.dtype == ms.float32 for p in list(netG.get_parameters()) + list(netD.get_parameters()))
    data = np.random.default_rng(0)
    real = ms.Tensor(data.uniform(-1, 1, (8, 1, 32, 32)).astype(np.float32))
    flags = []
    for _ in range(8):
        z = ms.Tensor(data.standard_normal((8, 16, 1, 1)).astype(np.float32))
        outputs = step(real, z)
        assert outputs[0].dtype == ms.float32 and np.isfinite(float(outputs[0].asnumpy()))
        flags.append((bool(outputs[5].asnumpy()), bool(outputs[6].asnumpy())))
    assert flags[-1] == (False, False), flags  # the scales settled where float16 gradients fit
    assert float(step.train_d.scale_sense.asnumpy()) <= 2.0 ** 16
    assert len(head) == (4 if d_contrastive else 0)
    assert not any(np.array_equal(a, b) for a, b in zip(head_before, snapshot(head)))


def test_a_float16_run_logs_its_skipped_steps_and_resumes_at_the_loss_scale_it_reached(tmp_path, monkeypatch):
    """The trainer with loss-scaled step cells (as on GPU/Ascend; here in fp32 on CPU): the log line counts each
    network's skipped steps and shows its scale; the training checkpoint keeps the scales and their counters."""
    import src.networks
    from src.trainer import Trainer
    monkeypatch.setattr(src.networks, "loss_scaled", lambda cfg: True)
    run = str(tmp_path / "run")
    small = ["--dataset", "digits", "--batch_size", "4", "--ngf", "8", "--ndf", "8", "--nz", "16",
             "--log_interval", "1", "--metrics_interval", "0", "--fast_cpu", "off", "--output_path", run]
    trainer = Trainer(resolve_train_config(parse_train_args(small + ["--max_steps", "3"])))
    assert [name for name, _ in trainer.loss_scales] == [
        "D.scale", "D.current_step", "D.last_overflow_step", "G.scale", "G.current_step", "G.last_overflow_step"]
    trainer.train_step.train_d.scale_sense.set_data(ms.Tensor(3e38, ms.float32))  # D's gradients overflow
    assert trainer.run() == 3
    with open(os.path.join(run, "metrics.jsonl")) as f:
        first = json.loads(f.readline())
    assert (first["skipped_d"], first["skipped_g"]) == (1, 0)
    assert (first["loss_scale_d"], first["loss_scale_g"]) == (pytest.approx(1.5e38), 2.0 ** 16)
    with open(os.path.join(run, "train.log")) as f:
        assert "float16 steps skipped (gradients overflowed): D 1; loss scale D 1.5e+38, G 65536" in f.read()
    saved = {name: p.asnumpy().copy() for name, p in trainer.loss_scales}
    assert saved["D.current_step"] == 4 and saved["G.current_step"] == 4  # three steps taken, counting from 1
    trainer.lock.close()  # as when the training process ends

    args = parse_train_args(["--resume", "--output_path", run, "--max_steps", "3"])
    resumed = Trainer(resume_config(json.load(open(os.path.join(run, "config.json"))), args)[0])
    assert resumed.step == 3
    for name, p in resumed.loss_scales:
        np.testing.assert_array_equal(p.asnumpy(), saved[name], err_msg=name)
