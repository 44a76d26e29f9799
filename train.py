"""Train DCGAN: python train.py --dataset NAME --data_path PATH --output_path RUN_DIR [options]; see README.md."""
import sys

from src.config import parse_train_args, resolve_train_config, resume_config
from src.errors import TrainingDiverged, UserError


def main(argv=None):
    try:
        args = parse_train_args(argv)
        # Runs before MindSpore is imported: oneDNN reads its ISA cap once, at start-up (see src/device.py).
        from src import device
        fast_cpu = args.fast_cpu
        if args.resume and fast_cpu is None:
            from src.run_dir import read_config
            fast_cpu = read_config(args.output_path).get("fast_cpu")
        note = device.prepare_cpu_environment(args.device_target, fast_cpu or "on")
        if args.resume:
            from src.run_dir import read_config
            cfg = resume_config(read_config(args.output_path), args)
        else:
            cfg = resolve_train_config(args)
        device.set_device(cfg["device_target"], cfg["device_id"], cfg["mode"], cfg["run_distribute"])
        from src.distributed import init_world
        world = init_world(cfg["run_distribute"])
        from src.trainer import Trainer
        Trainer(cfg, world, notes=[note]).run()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
