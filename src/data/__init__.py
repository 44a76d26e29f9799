"""Training images: the dataset readers, bad-file handling, MindRecord and the labelled splits, behind one interface.

    options.py    dataset names, sizes, channels, splits, and the check of a request's options
    source.py     Request and Reader (a validated source), MindSpore helpers shared by every pipeline
    readers.py    one reader per on-disk format (MindSpore's own readers), detect_format, the digits hold-out
    mnist.py      MNIST's idx files, plain or gzip'ed
    transforms.py reader output -> network input (resize, crop, channels, [-1, 1], CHW)
    in_memory.py  images held in memory (the digits): transformed once, each epoch batched with numpy
    bad_files.py  unreadable files found while decoding: skipped, counted, named, the epoch topped up
    mindrecord.py prepare_data.py's format, read back
    convert.py    any source -> MindRecord at the training resolution (prepare_data.py)
    labelled.py   labelled train/test arrays for verify.py and the quality metrics

src/dataset.py (create_dataset, the model-zoo entry point) builds the training pipeline from these. Code outside
this package imports the names below from `src.data`. MindSpore is imported on first use only: importing this
package must not load it, because src/cpu/device.py sets CPU environment variables that MindSpore reads once.
"""
from src.data.bad_files import BadFiles, decoded_twice
from src.data.in_memory import batched_epoch
from src.data.options import (BUILT_IN, CHANNELS, DATASETS, DIGITS_SPLIT_SEED, DIGITS_TEST_FRACTION, IMAGE_SIZES,
                              NO_SPLIT, ONLY_SPLIT, SPLITS, check_options)
from src.data.mnist import MNIST_FILES
from src.data.readers import detect_format, digits_arrays, digits_split, existing_dir, image_subdirs, open_reader
from src.data.source import Request, count_images, mindspore_dataset, mindspore_reason
from src.data.transforms import pixel_transforms

__all__ = ["BUILT_IN", "BadFiles", "CHANNELS", "DATASETS", "DIGITS_SPLIT_SEED", "DIGITS_TEST_FRACTION", "IMAGE_SIZES",
           "MNIST_FILES", "NO_SPLIT", "ONLY_SPLIT", "Request", "SPLITS", "batched_epoch", "check_options", "count_images",
           "decoded_twice", "detect_format", "digits_arrays", "digits_split", "existing_dir", "image_subdirs",
           "mindspore_dataset", "mindspore_reason", "open_reader", "pixel_transforms"]
