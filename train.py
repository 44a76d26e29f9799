"""Train DCGAN: python train.py --dataset NAME --data_path PATH --output_path RUN_DIR [options]; see README.md."""
import sys

from src.cli import command
from src.run.interrupt import block_stop_signals


@command
def main(argv=None):
    # First of all, before NumPy or MindSpore start a thread (a thread inherits the signal mask of its creator):
    # SIGINT/SIGTERM then reach the trainer's StopRequest (see src/run/interrupt.py), never MindSpore's handlers.
    block_stop_signals()
    from src.config import parse_train_args, resolve_train_config, resume_config

    args = parse_train_args(argv)
    if args.resume:
        from src.run.directory import read_config
        cfg, changes = resume_config(read_config(args.output_path), args)
    else:
        cfg, changes = resolve_train_config(args), []
    from src.mixed_precision import check_amp_level
    check_amp_level(cfg)  # a CPU without native bf16 refuses --amp_level O1/O2 here, before any work
    # Runs before MindSpore is imported: oneDNN reads its ISA cap once, at start-up (see src/cpu/device.py).
    from src.cpu import device
    note = device.prepare_cpu_environment(cfg["device_target"], cfg.get("fast_cpu") or "on")
    device.set_device(cfg["device_target"], cfg["device_id"], cfg["mode"], cfg["run_distribute"])
    from src.run.distributed import init_world
    world = init_world(cfg["run_distribute"])
    from src.trainer import Trainer
    Trainer(cfg, world, notes=[note, *changes]).run()


if __name__ == "__main__":
    sys.exit(main())
