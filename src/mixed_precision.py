"""--amp_level: the precision a run computes in, in the model zoo's terms (O0 = fp32, O1 and O2 = mixed).

- CPU: O1 and O2 both mean bf16 convolutions on the project's kernels (src/cpu/kernels/dnnl_conv.cc: bf16
  operands, fp32 accumulation and results, in every pass; bf16_route in conv_gemm.cc picks the kernel); everything
  else (weights, Adam state, BatchNorm, losses, checkpoints) stays fp32, so checkpoints are those of an fp32 run.
  It needs native bf16 (src/cpu/bf16.py): asking for it elsewhere is refused before any work.
- GPU and Ascend: mindspore.amp at that level in float16 (O1: the operators on MindSpore's float16 list; O2: all but
  BatchNorm, which stays fp32), the losses in fp32, and a dynamic loss scale for each network (src/step_cells.py):
  a step whose gradients overflow is skipped for that network and logged.
"""
from src.errors import UserError

AMP_LEVELS = ("O0", "O1", "O2")


def amp_level(cfg):
    return cfg.get("amp_level") or "O0"  # runs saved before --amp_level trained in fp32


def loss_scaled(cfg):
    """Whether the step cells scale the loss: float16 training on GPU or Ascend."""
    return amp_level(cfg) != "O0" and cfg["device_target"] != "CPU"


def check_amp_level(cfg):
    """Refuse mixed precision the machine cannot run natively (a UserError). Call it before any work."""
    if amp_level(cfg) == "O0" or cfg["device_target"] != "CPU":
        return
    if cfg.get("fast_cpu", "on") != "on":
        raise UserError(f"--amp_level {amp_level(cfg)} on CPU computes the convolutions in bf16 on the project's "
                        f"kernels, which --fast_cpu off turns off")
    from src.cpu.bf16 import native_bf16_problem
    problem = native_bf16_problem()
    if problem:
        raise UserError(f"--amp_level {amp_level(cfg)} needs native bf16: {problem}")


def describe(cfg):
    """One sentence for the log."""
    level = amp_level(cfg)
    if level == "O0":
        return "precision: fp32 (--amp_level O0)"
    if cfg["device_target"] == "CPU":
        return (f"precision: bf16 convolutions with fp32 accumulation (--amp_level {level}); weights, optimizer, "
                f"BatchNorm and losses in fp32")
    return (f"precision: float16 by mindspore.amp (--amp_level {level}, BatchNorm in fp32), a dynamic loss scale "
            f"per network; overflowing steps are skipped and logged")


def apply_to_networks(cfg, *nets):
    """The nets as the training step runs them. On GPU/Ascend: mindspore.amp's float16 versions, new cells holding
    the same Parameter objects under the same names (so the EMA, checkpoints and sampling keep using the fp32 nets);
    elsewhere the nets themselves (on CPU bf16 is chosen by the layers, src/layers.py)."""
    if not loss_scaled(cfg):
        return nets
    import mindspore as ms
    return tuple(ms.amp.auto_mixed_precision(net, amp_level(cfg)) for net in nets)
