"""The built-in digits reach training without importing scikit-learn (a start-up cost of 0.6-1.6 s on a 2-core VM):
the images and labels are load_digits' exactly, and the fixed hold-out is train_test_split's, drawn once and then
read from its cache."""
import json
import os

import numpy as np

from tests.cli import run_python, user_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from src.data.readers import digits_arrays, digits_split
images, labels = digits_arrays()
split = digits_split(labels)
print(json.dumps({{"sklearn_imported": "sklearn" in sys.modules, "test": split["test"].tolist(),
                  "images_sum": int(images.sum(dtype="int64")),
                  "labels": labels.tolist()}}))
"""


def run_child(home):
    done = run_python(CHILD.format(root=ROOT), env=user_env(HOME=home), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_digits_and_their_hold_out_equal_scikit_learns_and_the_second_start_does_not_import_it(tmp_path):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from src.data.options import DIGITS_SPLIT_SEED, DIGITS_TEST_FRACTION

    first, second = run_child(tmp_path), run_child(tmp_path)
    assert first["sklearn_imported"] and not second["sklearn_imported"]
    digits = load_digits()
    _, test = train_test_split(np.arange(len(digits.target)), test_size=DIGITS_TEST_FRACTION,
                               stratify=digits.target, random_state=DIGITS_SPLIT_SEED)
    for result in (first, second):
        assert result["labels"] == digits.target.tolist()
        assert result["test"] == sorted(test.tolist())
        assert result["images_sum"] == int(np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8).sum(dtype="int64"))
