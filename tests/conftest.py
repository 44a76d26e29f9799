"""Test set-up: the CPU settings train.py makes, applied before any test imports MindSpore."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from src.device import prepare_cpu_environment  # noqa: E402

prepare_cpu_environment("CPU")
os.environ.setdefault("GLOG_v", "3")  # MindSpore's own INFO/WARNING chatter off
