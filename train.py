"""Train DCGAN: python train.py --dataset NAME --data_path PATH --output_path RUN_DIR [options]; see README.md."""
import sys

from src.config import parse_train_args, resolve_train_config, resume_config
from src.errors import Interrupted, TrainingDiverged, UserError
from src.interrupt import block_stop_signals


def main(argv=None):
    # Before MindSpore starts a thread: SIGINT/SIGTERM then reach the trainer's StopRequest (see src/interrupt.py).
    block_stop_signals()
    try:
        args = parse_train_args(argv)
        if args.resume:
            from src.run_dir import read_config
            cfg, changes = resume_config(read_config(args.output_path), args)
        else:
            cfg, changes = resolve_train_config(args), []
        # Runs before MindSpore is imported: oneDNN reads its ISA cap once, at start-up (see src/device.py).
        from src import device
        note = device.prepare_cpu_environment(cfg["device_target"], cfg.get("fast_cpu") or "on")
        device.set_device(cfg["device_target"], cfg["device_id"], cfg["mode"], cfg["run_distribute"])
        from src.distributed import init_world
        world = init_world(cfg["run_distribute"])
        from src.trainer import Trainer
        Trainer(cfg, world, notes=[note, *changes]).run()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Interrupted as stop:  # the trainer has logged where it stopped and how to continue
        return stop.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
