"""Checks on a saved model's files before LightGBM reads them in this process.

LightGBM's text parser is not safe on damaged input: on a file truncated in its trees it
prints "Model format error" and calls ``abort()`` (exit 134) or crashes with a segmentation
fault, so neither ``try`` nor the rule-based fallback ever runs; some truncations (the end of
the file cut off after the last tree) it accepts without a word. Each file therefore passes,
in this order (docs/models.md, "Model files and checksums"):

1. **Checksum**: the sha256 of each booster file and of the card, recorded when the model was
   saved (``checksums.json``) and registered (the version's ``sha256`` tag), must match.
   Catches any change after registration: truncation, garbage, an edited value, a valid file
   of another model. Models saved before checksums existed skip this step.
2. **Structure** (:func:`check_structure`): the text is LightGBM's format, each tree's section
   has the size the header's ``tree_sizes`` lists, the file ends with its last line
   (``pandas_categorical:``), and every tree's arrays have their lengths with child indices and
   split features in range. Catches truncation and most damage without a checksum.
3. **Parse in a child process** (:func:`parse_in_child`): a small interpreter that loads only
   LightGBM's shared library parses the very bytes checked above. An ``abort()`` or a crash
   there is a refused file, not a dead service. About 0.07 s for the three boosters.

Only then does this process parse the same bytes. Any failure raises
:class:`ModelFilesError`; its message names the file (never its path).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

#: Written by :meth:`paycadence.models.RiskModels.save` beside the files it lists.
CHECKSUMS = "checksums.json"
#: Seconds the child process may take to parse the boosters.
PARSE_TIMEOUT = 60


class ModelFilesError(ValueError):
    """A saved model's files failed a check (health reason ``model_invalid``)."""

    code = "model_invalid"


class NonFiniteForecastError(ValueError):
    """A model gave a NaN or infinite forecast (health reason ``model_output_not_finite``)."""

    code = "model_output_not_finite"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checksums(directory: str | Path, names) -> dict[str, str]:
    """``{file name: sha256}`` of the files ``names`` of ``directory`` that exist."""
    directory = Path(directory)
    return {n: sha256((directory / n).read_bytes()) for n in sorted(names)
            if (directory / n).is_file()}


def recorded(directory: str | Path) -> dict[str, str] | None:
    """The checksums saved with the model (``checksums.json``), None when there are none (a
    model saved before they were written)."""
    path = Path(directory) / CHECKSUMS
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))["sha256"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ModelFilesError(f"{CHECKSUMS} is damaged") from None
    if not isinstance(found, dict):
        raise ModelFilesError(f"{CHECKSUMS} is damaged")
    return found


def verify(files: dict[str, bytes], expected: dict[str, str]) -> None:
    """Every file read (``{name: bytes}``) has its recorded sha256, and every recorded file
    was read."""
    for name in sorted(set(expected) - set(files)):
        raise ModelFilesError(f"{name} is missing (it was registered with the model)")
    for name, data in files.items():
        want = expected.get(name)
        if want is None:
            raise ModelFilesError(f"{name} was not registered with the model")
        if sha256(data) != want:
            raise ModelFilesError(f"{name}: sha256 differs from the one recorded at "
                                  "registration (the file was changed or damaged)")


_TREE = re.compile(rb"^Tree=(\d+)\n", re.M)
#: Per-tree arrays and their lengths, in leaves (n) or internal nodes (n - 1).
_INTERNAL = ("split_feature", "threshold", "decision_type", "left_child", "right_child")


def check_structure(name: str, data: bytes) -> None:
    """A LightGBM text model whose sections are all there and sized as its header says.

    Raises
    ------
    ModelFilesError
        Naming the first problem found (not the format LightGBM writes, a tree of another
        size than listed, a missing end, an array of the wrong length, a child index or a
        split feature out of range).
    """
    if not data.startswith(b"tree\n"):
        raise ModelFilesError(f"{name} is not a LightGBM text model")
    if b"\0" in data:
        raise ModelFilesError(f"{name} holds bytes a LightGBM model never has")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ModelFilesError(f"{name} holds bytes a LightGBM model never has") from None
    head, sep, _ = text.partition("\nTree=")
    header = dict(line.split("=", 1) for line in head.splitlines()[1:] if "=" in line)
    if not sep:
        raise ModelFilesError(f"{name} has no trees (truncated?)")
    end = data.find(b"\nend of trees\n")
    if end < 0:
        raise ModelFilesError(f"{name} is truncated (no 'end of trees')")
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    if not last.startswith(b"pandas_categorical:"):
        raise ModelFilesError(f"{name} is truncated (its last line is missing)")
    try:
        json.loads(last.removeprefix(b"pandas_categorical:"))
    except ValueError:
        raise ModelFilesError(f"{name} is truncated (its last line is cut)") from None
    trees = data[len(head) + 1:end + 1]
    starts = [m.start() for m in _TREE.finditer(trees)]
    sizes = [int(s) for s in header.get("tree_sizes", "").split()]
    if sizes and len(sizes) != len(starts):
        raise ModelFilesError(f"{name} has {len(starts)} trees where its header lists "
                              f"{len(sizes)}")
    if sizes and [b - a for a, b in zip(starts, [*starts[1:], len(trees)], strict=True)] \
            != sizes:
        raise ModelFilesError(f"{name}: a tree's size differs from its header's")
    try:
        features = int(header["max_feature_idx"]) + 1
    except (KeyError, ValueError):
        raise ModelFilesError(f"{name} has no valid 'max_feature_idx'") from None
    for i, (a, b) in enumerate(zip(starts, [*starts[1:], len(trees)], strict=True)):
        _check_tree(name, i, trees[a:b].decode("ascii"), features)


def _check_tree(name: str, index: int, section: str, features: int) -> None:
    """One tree's arrays: lengths, numbers, child indices and split features in range."""
    fields = dict(line.split("=", 1) for line in section.splitlines()[1:] if "=" in line)
    where = f"{name}, tree {index}"
    try:
        leaves = int(fields["num_leaves"])
        arrays = {key: fields[key].split() for key in ("leaf_value", *(
            _INTERNAL if leaves > 1 else ()))}
        values = {key: [float(v) for v in arrays[key]]
                  for key in ("leaf_value", "threshold", "left_child", "right_child",
                              "split_feature") if key in arrays}
    except (KeyError, ValueError):
        raise ModelFilesError(f"{where}: a field is missing or not a number") from None
    if leaves < 1 or len(arrays["leaf_value"]) != leaves or any(
            len(arrays[k]) != leaves - 1 for k in arrays if k != "leaf_value"):
        raise ModelFilesError(f"{where}: its arrays do not have {leaves} leaves")
    for key in ("left_child", "right_child"):
        if any(not (-leaves <= c < leaves - 1) or c != int(c) for c in values.get(key, ())):
            raise ModelFilesError(f"{where}: a child index is out of range")
    if any(not (0 <= f < features) or f != int(f) for f in values.get("split_feature", ())):
        raise ModelFilesError(f"{where}: a split feature is out of range")
    if any(math.isnan(t) for t in values.get("threshold", ())):
        raise ModelFilesError(f"{where}: a threshold is not a number")
    try:
        kinds = [int(v) for v in arrays.get("decision_type", ())]
        n_cat = int(fields.get("num_cat", "0"))
        bounds = [int(v) for v in fields.get("cat_boundaries", "").split()]
        words = len(fields.get("cat_threshold", "").split())
    except ValueError:
        raise ModelFilesError(f"{where}: a decision type is not a number") from None
    # bit 0: categorical split; bits 2-3: how missing values go (none, zero or NaN)
    if any(not (0 <= k < 16) or (k >> 2) & 3 > 2 for k in kinds):
        raise ModelFilesError(f"{where}: a decision type is out of range")
    for k, t in zip(kinds, values.get("threshold", ()), strict=True):
        # a categorical split's threshold indexes its bitset's boundaries: LightGBM reads
        # past its arrays (a crash when predicting) when they are not there
        if k & 1 and not (0 <= t < n_cat and len(bounds) == n_cat + 1
                          and 0 <= bounds[int(t) + 1] <= words):
            raise ModelFilesError(f"{where}: a categorical split has no category set")


# The child: no site-packages, no paycadence, no numpy; only LightGBM's shared library
# through ctypes, fed the files' bytes on stdin (8-byte big-endian length, then the text).
_CHILD = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.LGBM_GetLastError.restype = ctypes.c_char_p
stdin, out = sys.stdin.buffer, sys.stdout
for i in range(int(sys.argv[2])):
    text = stdin.read(int.from_bytes(stdin.read(8), "big"))
    out.write(f"\n@parsing {i}\n"); out.flush()
    iters, handle = ctypes.c_int(0), ctypes.c_void_p()
    if lib.LGBM_BoosterLoadModelFromString(ctypes.c_char_p(text), ctypes.byref(iters),
                                           ctypes.byref(handle)):
        sys.exit(3)
    lib.LGBM_BoosterFree(handle)
"""


def _library() -> str:
    """The path of the LightGBM shared library this process uses."""
    import lightgbm.basic

    return lightgbm.basic._LIB._name  # the ctypes handle's path: the very library loaded


def parse_in_child(files: dict[str, bytes], timeout: float = PARSE_TIMEOUT) -> None:
    """Have LightGBM parse each booster's text in a child process first.

    Raises
    ------
    ModelFilesError
        When LightGBM refuses a file, or aborts or crashes on it (naming the file and the
        signal), or the child does not finish within ``timeout`` seconds.
    """
    if not files:
        return
    names = list(files)
    payload = b"".join(len(files[n]).to_bytes(8, "big") + files[n] for n in names)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _CHILD, _library(),
                               str(len(names))], input=payload, capture_output=True,
                              timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise ModelFilesError(f"LightGBM took over {timeout:.0f} s to read the boosters in a "
                              "child process") from None
    if done.returncode == 0:
        return
    # LightGBM's own messages go to the same stdout: only the child's markers are read
    reached = re.findall(r"^@parsing (\d+)$", done.stdout.decode("ascii", "replace"), re.M)
    name = names[int(reached[-1])] if reached else "a booster file"
    if done.returncode < 0:
        try:
            how = signal.Signals(-done.returncode).name
        except ValueError:
            how = f"signal {-done.returncode}"
        raise ModelFilesError(f"{name}: LightGBM crashed reading it ({how}) in a child "
                              "process")
    raise ModelFilesError(f"{name}: LightGBM refused it as a model file")
