"""Render a run directory's report: python report.py RUN_DIR; prints the path of its index.html (see src/report.py)."""
import sys

from src.config import ArgumentParser
from src.errors import UserError


def main(argv=None):
    parser = ArgumentParser(description="Write RUN_DIR/index.html: curves, grids, progress GIF, checkpoints, config.")
    parser.add_argument("run_dir", help="a run directory written by train.py (its --output_path)")
    try:
        args = parser.parse_args(argv)
        from src.report import render_report
        print(render_report(args.run_dir))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
