"""Render a run directory's report: python report.py RUN_DIR; prints its index.html's path (src/report)."""
import sys

from src.cli import ArgumentParser, command


@command
def main(argv=None):
    parser = ArgumentParser(description="Write RUN_DIR/index.html: curves, grids, progress GIF, checkpoints, config.")
    parser.add_argument("run_dir", help="a run directory written by train.py (its --output_path)")
    args = parser.parse_args(argv)
    from src.report import render_report
    print(render_report(args.run_dir))


if __name__ == "__main__":
    sys.exit(main())
