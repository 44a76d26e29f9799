"""Bad image files in a file-based dataset (unreadable, truncated, not an image): found while decoding, skipped,
counted and named, and the epoch topped up so that it keeps its full batch count.

A bad file cannot be found without decoding every file, so it is dealt with while training: it is skipped (never fed
to the networks) and counted in `BadFiles`, and an epoch short of images is topped up to its full batch count with the
first good images of a second pass over the shard, so every epoch, shard and resumed run keeps exactly the same
number of batches, in an order that depends on the seed alone (see TopUp). `BadFiles.iterate` runs one epoch: it
logs what was skipped, and stops the run (UserError) at the first bad file when strict, or when more than half of
the files are bad (the top-up pass cannot fill the epoch).
"""
import hashlib
import io
import os
import threading
import warnings

import numpy as np

from src.errors import UserError


class BadFiles:
    """The image files a pipeline could not decode (unreadable, truncated, not an image) and so skipped. Shared by
    the pipeline's worker threads; passed back to create_dataset for a later epoch, it keeps counting there, each
    file once. Files are keyed by path; LSUNDataset does not say which file it read, so an LSUN file is keyed by
    (size, sha1) and its path looked up on disk (one scan of the folders) when it is named."""

    LISTED = 10  # at most this many newly found files are named in one report

    def __init__(self, strict=False, locate=None, root=None):
        self.strict = strict
        self._locate, self._root = locate, root  # locate(keys) -> {key: path} for (size, sha1) keys
        self._lock = threading.Lock()
        self._reasons = {}  # key -> reason, in the order found
        self._names = {}  # (size, sha1) key -> its path (or a description), once looked up
        self._reported = 0

    def add(self, key, reason):
        with self._lock:
            self._reasons.setdefault(key, reason)

    @property
    def count(self):
        return len(self._reasons)

    def entries(self, start=0, stop=None):
        """[(name, reason)] of the bad files found in that range, in the order found."""
        with self._lock:
            entries = list(self._reasons.items())[start:stop]
        unnamed = [key for key, _ in entries if not isinstance(key, str) and key not in self._names]
        if unnamed:
            found = self._locate(unnamed) if self._locate else {}
            for key in unnamed:
                self._names[key] = found.get(key) or f"a file of {key[0]} bytes in {self._root}"
        return [(key if isinstance(key, str) else self._names[key], reason) for key, reason in entries]

    @property
    def first(self):
        """'path: reason' of the first bad file found, or None."""
        entries = self.entries(0, 1)
        return f"{entries[0][0]}: {entries[0][1]}" if entries else None

    def summary(self):
        s = "" if self.count == 1 else "s"
        return f"skipped {self.count} unreadable image file{s} so far (first: {self.first})"

    def report(self):
        """Log lines for the files found since the last report: the running count, then each new file (at most
        LISTED of them). Empty if none was found."""
        count, start = self.count, self._reported
        if count == start:
            return []
        self._reported = count
        lines = [self.summary()]
        lines += [f"  skipped {name}: {reason}" for name, reason in self.entries(start, start + self.LISTED)]
        if count - start > self.LISTED:
            lines.append(f"  ... and {count - start - self.LISTED} more")
        return lines

    def check_strict(self):
        """Raise UserError naming the first bad file, when strict and one was found."""
        if self.strict and self.count:
            raise UserError(f"bad image file {self.first} (--strict stops at the first one; without it bad files "
                            "are skipped and counted)")

    def iterate(self, dataset, batches, log=None):
        """The first `batches` rows of one pass over `dataset` (as dataset.create_tuple_iterator(num_epochs=1) yields
        them; it stops there rather than wait for the end of the pipeline). Raises UserError when strict and a bad
        file was found, or when the pass ends short (too many bad files for the top-up pass to fill the epoch).
        When the pass ends (or the caller stops early) passes each line of report() to log(line)."""
        done = 0
        try:
            if batches > 0:
                for row in dataset.create_tuple_iterator(num_epochs=1):
                    self.check_strict()
                    yield row
                    done += 1
                    if done == batches:
                        break
            self.check_strict()
            if done < batches:
                raise UserError(f"only {done} of the epoch's {batches} batches could be formed: "
                                f"{self.summary()}; more than half of the files are bad, remove or replace them")
        finally:
            if log and not self.strict:
                for line in self.report():
                    log(line)


_READ_ERROR = b"E"  # tag_with_path: the file could not be read; the reason follows the path
_READ_OK = b"P"  # tag_with_path: the file's bytes follow the path
_NOT_READ = b"S"  # TopUp.tag_with_path: the file was not read (it seemed not to be needed); only its path is here


def tag_with_path(path):
    """The `decrypt` hook of ImageFolderDataset and CelebADataset: called with each file's path, it returns the bytes
    the reader yields. Prefixing the path lets Decoder name a bad file. Never raises (that would end the pipeline)."""
    try:
        with open(path, "rb") as f:
            return _READ_OK + os.fsencode(path) + b"\0" + f.read()
    except OSError as error:
        return _READ_ERROR + os.fsencode(path) + b"\0" + f"cannot read it: {error.strerror}".encode()


def find_files(folders, keys):
    """{(size, sha1): path} for the files in `folders` matching those keys (one scan; only same-size files read)."""
    sizes, found = {size for size, _ in keys}, {}
    for folder in folders:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file() and entry.stat().st_size in sizes:
                    key = (entry.stat().st_size, _sha1_file(entry.path))
                    if key in keys:
                        found.setdefault(key, entry.path)
    return found


def _sha1_file(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def decode(data):
    """uint8 HWC RGB pixels of an encoded image; raises if the bytes are not one complete image. Pillow is strict
    where libjpeg is not (a JPEG cut short decodes to grey rows there), and its errors are one readable line."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey: keep the high byte, as OpenCV does
            return np.repeat((np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)[..., None], 3, axis=2)
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _reason(error):
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):
        return "not an image in a known format"
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__


_SILENCE_PIL = []


def _silence_pil_warnings():
    """Pillow's warnings about odd files (palette transparency, huge images) are not for the training log."""
    if not _SILENCE_PIL:
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        _SILENCE_PIL.append(True)


class Decoder:
    """Map op turning an undecoded "image" column into uint8 HWC pixels. `encoded` says what the column holds:
    "path" (a file path: read here), "tagged" (tag_with_path's output) or "bytes" (a file's bytes, no name).
    Without bad_files a bad file raises ValueError naming it; with bad_files it returns (pixels, ok) and a bad file
    gives (a 1x1 placeholder, False) and is recorded, for the pipeline to filter out. With a TopUp, a second
    input column says which pass a row is from: good images of the first pass are counted there, and images of the
    top-up pass skipped (like a bad file, but uncounted) once the first pass is known to fill the epoch."""

    def __init__(self, encoded, bad_files=None, top_up=None):
        self.encoded, self.bad_files, self.top_up = encoded, bad_files, top_up
        _silence_pil_warnings()

    @staticmethod
    def _read(path):
        try:
            with open(path, "rb") as f:
                return path, f.read(), None
        except OSError as error:
            return path, None, f"cannot read it: {error.strerror}"

    def _unpack(self, value):
        """(key naming the file, its bytes or None, reason it is bad or None)."""
        if self.encoded == "path":
            return self._read(str(value.item() if isinstance(value, np.ndarray) else value))
        data = np.asarray(value).tobytes()
        if self.encoded == "bytes":
            return (len(data), hashlib.sha1(data).hexdigest()), data, None
        path, _, rest = data[1:].partition(b"\0")
        if data[:1] == _READ_ERROR:
            return os.fsdecode(path), None, rest.decode(errors="replace")
        if data[:1] == _NOT_READ:
            return self._read(os.fsdecode(path))
        return os.fsdecode(path), rest, None

    def __call__(self, value, top_up_pass=None):
        first_pass = top_up_pass is None or not np.ravel(top_up_pass)[0]
        if self.top_up and not first_pass and self.top_up.enough():
            return np.zeros((1, 1, 3), np.uint8), np.array(False)
        key, data, reason = self._unpack(value)
        if reason is None:
            try:
                image = decode(data)
                if self.top_up and first_pass:
                    self.top_up.count_good()
                return (image, np.array(True)) if self.bad_files else image
            except Exception as error:  # noqa: BLE001 - a decoder fed arbitrary bytes can fail in any way
                reason = _reason(error)
        if self.bad_files is None:
            name = key if isinstance(key, str) else f"a file of {key[0]} bytes"
            raise ValueError(f"bad image file {name}: {reason}")
        self.bad_files.add(key, reason)
        return np.zeros((1, 1, 3), np.uint8), np.array(False)


def is_ok(ok):
    return bool(ok)


class TopUp:
    """The epoch's images are the first `needed` good images of the shard read twice: the first pass, then the
    top-up pass (the same reader again, after it). For a top-up row the decoder asks enough(): once the first pass
    has decoded `needed` good images, every top-up image lies beyond them and is skipped undecoded; until then it
    is decoded. Either way the images kept (take(needed)) are the same, so the epoch depends on the seed alone,
    never on thread timing, and the top-up pass costs decoding only in epochs that need it. Reset at the start of
    every iteration over the pipeline (a MindSpore dataset callback on the decoder's map op)."""

    def __init__(self, needed):
        self.needed, self.good = needed, 0
        self._lock = threading.Lock()

    def count_good(self):
        with self._lock:
            self.good += 1

    def enough(self):
        return self.good >= self.needed

    def reset(self):
        with self._lock:
            self.good = 0

    def tag_with_path(self, path):
        """The top-up reader's decrypt hook: tag_with_path, or only the path once the file seems not needed. (The
        reader may run ahead of the decoder's reset, so the decoder reads the file itself if it is needed after all.)"""
        return _NOT_READ + os.fsencode(path) + b"\0" if self.enough() else tag_with_path(path)

    def callback(self):
        """A dataset callback that resets this at the start of each pass (each create_tuple_iterator)."""
        from mindspore.dataset.callback import DSCallback

        top_up = self

        class _Reset(DSCallback):
            def ds_epoch_begin(self, ds_run_context):
                top_up.reset()

        return _Reset()


def decoded_twice(reader, source, options, bad_files, needed, workers):
    """The shard's good images, read twice (see TopUp), bad files dropped and counted in bad_files."""
    import mindspore.dataset.transforms as transforms

    def marked(pass_source, top_up_pass):  # the label column becomes the pass number (labels are not needed)
        return pass_source.project(["image", reader.label]).map(
            operations=transforms.Fill(top_up_pass), input_columns=reader.label, output_columns="top_up_pass")

    top_up = TopUp(needed)
    second = reader.open(**options, **({"decrypt": top_up.tag_with_path} if reader.encoded == "tagged" else {}))
    # Concatenated before decoding: the readers know their sizes, while a filtered pipeline is counted by running it.
    rows = marked(source, 0).concat(marked(second, 1))
    # Threads, not processes: the decoder records bad files in bad_files (Pillow decodes without the GIL).
    rows = rows.map(operations=Decoder(reader.encoded, bad_files, top_up), input_columns=["image", "top_up_pass"],
                    output_columns=["image", "ok"], num_parallel_workers=workers, python_multiprocessing=False,
                    callbacks=[top_up.callback()])
    return rows.filter(predicate=is_ok, input_columns=["ok"], num_parallel_workers=1).project(["image"])

