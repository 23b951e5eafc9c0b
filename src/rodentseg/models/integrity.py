"""Checks that a model's weights are the ones shipped and hold numbers (issue 23, defect 4).

- ``SHA256SUMS`` beside the weights (``sha256sum`` format: ``<64 hex>  <file name>`` per line,
  so ``cd FOLDER && sha256sum -c SHA256SUMS`` checks it too) records the digest of each file
  it names. Every shipped model folder (``rodentseg/models/weights/<name>/``) has one, and
  :func:`verify_sha256sums` runs when a model folder that has one is loaded. Whoever replaces
  shipped weights reruns :func:`write_sha256sums` (or ``rodentseg models --write-sha256sums
  FOLDER``) beside them; ``tests/reliability/test_weights.py`` fails until they do.
- :func:`check_finite_state` refuses NaN or infinite values among a state dict's floating
  tensors (any model folder, shipped or not), :func:`check_finite_onnx` the same among an ONNX
  file's initializers, and :func:`check_finite_output` a batch of model outputs that holds any.

Cost: hashing is done once per load (3 MB for ``rodentseg-tiny``, well under 10 ms), never per
frame; the output check is one pass over the probabilities of a batch (about 1 ms for eight
640x480 frames, against about 180 ms for the model).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from rodentseg.errors import RodentsegError
from rodentseg.io.video import sha256_file

SUMS_FILE = "SHA256SUMS"
#: What :func:`write_sha256sums` records by default: the weights of a model folder.
DEFAULT_FILES = ("model.safetensors",)


def read_sha256sums(folder: str | Path) -> dict[str, str]:
    """``{file name: hex digest}`` from ``folder/SHA256SUMS``; empty when there is none.

    Raises:
        RodentsegError: a line is not ``<64 hex digits>  <file name>``.
    """
    path = Path(folder) / SUMS_FILE
    if not path.is_file():
        return {}
    sums = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition(" ")
        name = name[1:] if name.startswith(("*", " ")) else name  # binary / text mode marker
        if not sep or len(digest) != 64 or not name or any(c not in "0123456789abcdef"
                                                           for c in digest.lower()):
            raise RodentsegError(f"{path} line {n} is not '<sha256 hex>  <file name>' "
                                 f"(sha256sum format); got {line[:100]!r}")
        sums[name] = digest.lower()
    return sums


def write_sha256sums(folder: str | Path, files: Iterable[str] = DEFAULT_FILES) -> Path:
    """Record the sha256 of ``files`` in ``folder/SHA256SUMS`` (rerun after replacing weights).

    Entries for other files already in ``SHA256SUMS`` are kept; the file is written in
    ``sha256sum`` format, names sorted, so ``sha256sum -c SHA256SUMS`` run in ``folder`` agrees.

    Args:
        folder: a model folder (e.g. ``src/rodentseg/models/weights/rodentseg-tiny``).
        files: file names inside ``folder`` to record (default: ``model.safetensors``).

    Returns:
        The path of ``SHA256SUMS``.

    Raises:
        RodentsegError: a named file is not in ``folder``.
    """
    folder = Path(folder)
    sums = read_sha256sums(folder)
    for name in files:
        if not (folder / name).is_file():
            raise RodentsegError(f"cannot record the sha256 of {folder / name}: no such file; "
                                 "expected a model folder holding it")
        sums[name] = sha256_file(folder / name)
    path = folder / SUMS_FILE
    path.write_text("".join(f"{sums[name]}  {name}\n" for name in sorted(sums)))
    return path


def verify_sha256sums(folder: str | Path, files: Iterable[str] | None = None) -> dict[str, str]:
    """Check files against ``folder/SHA256SUMS``; nothing to check when there is none.

    Args:
        folder: the model folder.
        files: the names to check (each must be listed); None checks every listed file.

    Returns:
        ``{file name: hex digest}`` of the files checked (callers reuse it instead of hashing
        again).

    Raises:
        RodentsegError: a file's digest differs from the recorded one (the message names the
            file, the expected and the found digest, and the fix), or a file to check is
            missing or not listed.
    """
    folder = Path(folder)
    sums = read_sha256sums(folder)
    if not sums:
        return {}
    names = sorted(sums) if files is None else list(files)
    found = {}
    for name in names:
        path = folder / name
        if name not in sums:
            raise RodentsegError(f"{folder / SUMS_FILE} records no sha256 for {name}; expected "
                                 f"a line for it (it lists {sorted(sums)})")
        if not path.is_file():
            raise RodentsegError(f"{path} is missing; {folder / SUMS_FILE} expects it with "
                                 f"sha256 {sums[name]}")
        found[name] = sha256_file(path)
        if found[name] != sums[name]:
            raise RodentsegError(
                f"{path} is damaged or was replaced: sha256 {found[name]}, expected "
                f"{sums[name]} (recorded in {folder / SUMS_FILE}); reinstall rodentseg, or if "
                f"the new weights are meant, run `rodentseg models --write-sha256sums {folder}`")
    return found


def check_finite_state(state: Mapping[str, torch.Tensor | np.ndarray], source: str | Path) -> None:
    """Refuse NaN or infinite values in the floating tensors of a state dict.

    Args:
        state: tensor name -> torch tensor (as ``safetensors.torch.load_file`` returns) or
            numpy array (ONNX initializers).
        source: the file they came from, for the message.

    Raises:
        RodentsegError: one or more tensors hold non-finite values (the message names the
            first and counts them all).
    """
    bad = {}
    for name, t in state.items():
        if isinstance(t, torch.Tensor):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad[name] = int((~torch.isfinite(t)).sum())
        elif np.issubdtype(t.dtype, np.floating) and not np.isfinite(t).all():
            bad[name] = int((~np.isfinite(t)).sum())
    if bad:
        first = next(iter(bad))
        raise RodentsegError(
            f"{source} holds non-finite weights (NaN or inf): {sum(bad.values())} values in "
            f"{len(bad)} tensor(s), first {first!r}; expected finite numbers: the file is "
            "damaged or training diverged")


def check_finite_onnx(onnx_path: str | Path) -> None:
    """Refuse NaN or infinite values in the floating initializers (weights) of an ONNX file.

    Raises:
        RodentsegError: the file cannot be parsed, or as :func:`check_finite_state`.
    """
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(onnx_path))
    except Exception as e:  # onnx raises DecodeError and others for damaged files
        raise RodentsegError(f"could not read {onnx_path}: {e}; expected a file written by "
                             "`rodentseg export`") from None
    check_finite_state({i.name: numpy_helper.to_array(i) for i in model.graph.initializer},
                       onnx_path)


def check_finite_output(probs: np.ndarray, model_name: str) -> np.ndarray:
    """Refuse a batch of model outputs that holds NaN or infinite values; returns ``probs``.

    Args:
        probs: (B, H, W) float probabilities from a segmenter's ``predict``.
        model_name: the model, for the message.

    Raises:
        RodentsegError: a value is not finite (damaged weights, or an overflow on the device).
    """
    if not np.isfinite(probs).all():
        n = int((~np.isfinite(probs)).sum())
        raise RodentsegError(
            f"model {model_name} returned {n} non-finite (NaN or inf) probabilities for a batch "
            f"of {len(probs)} frames; expected values in [0, 1]: its weights are damaged or the "
            "device overflowed (try --device cpu)")
    return probs
