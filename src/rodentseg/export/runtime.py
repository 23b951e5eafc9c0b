"""Run an exported segmenter with onnxruntime, behind the same interface as the torch one.

:class:`OnnxSegmenter` has :class:`rodentseg.models.segmenter.Segmenter`'s interface
(``predict``, ``pre``, ``name``, ``path``, ``weights_sha256``, ``device``), so
:func:`rodentseg.segment.segment_video` runs it unchanged. :func:`load_runtime` picks the
runtime by name (``torch``, ``onnx``, ``onnx-int8``).

Where the ONNX file comes from (:func:`load_onnx_model`):

- a folder written by ``rodentseg export`` (it holds ``export.json``): its ``model.onnx`` or
  ``model.int8.onnx``;
- a registry name or torch model folder: fp32 is exported on first use into the cache
  (``$RODENTSEG_CACHE``, default ``~/.cache/rodentseg``, under ``onnx/<weights sha256>/``), and
  reused afterwards. INT8 is not made on the fly: static INT8 needs calibration frames from the
  user's own video, and dynamic INT8 (no frames) ran slower than torch in
  ``benchmarks/onnx_throughput.py``; ``rodentseg export --int8 --frames VIDEO --out DIR`` makes
  it, and ``--model DIR`` then loads it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from rodentseg.errors import RodentsegError
from rodentseg.export.onnx_export import (
    EXPORT_FILE,
    INT8_FILE,
    ONNX_FILE,
    _require_onnx,
    export_segmenter,
    min_side,
    pad_multiple,
)
from rodentseg.io.video import sha256_file
from rodentseg.models.integrity import (
    check_finite_onnx,
    check_finite_output,
    verify_sha256sums,
    write_sha256sums,
)
from rodentseg.models.segmenter import CONFIG_FILE, Preprocessing, check_frames, to_luma

#: Runtime names accepted by :func:`load_runtime` (and ``rodentseg segment --runtime``).
RUNTIMES = ("torch", "onnx", "onnx-int8")


def frames_to_luma(frames: np.ndarray, pre: Preprocessing, minimum: int = 64) -> np.ndarray:
    """uint8 frames (B, H, W[, 3]) -> padded luma (B, 1, H', W') float32, the graph's input.

    H', W' are :func:`pad_multiple` of H, W (multiples of ``pre.upscale``, at least
    ``minimum``); the added rows and columns repeat the edge (``forward_full`` pads the same
    way).
    """
    luma = to_luma(torch.from_numpy(np.ascontiguousarray(frames))).numpy()
    h, w = luma.shape[2:]
    ph, pw = pad_multiple(h, pre, minimum) - h, pad_multiple(w, pre, minimum) - w
    if ph or pw:
        luma = np.pad(luma, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge")
    return luma


def _providers(device: str) -> tuple[list[str], torch.device]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device in ("auto", "cuda") or device.startswith("cuda:"):
        if "CUDAExecutionProvider" in available:
            idx = int(device.split(":")[1]) if ":" in device else 0
            return ([("CUDAExecutionProvider", {"device_id": idx}), "CPUExecutionProvider"],
                    torch.device("cuda", idx))
        if device != "auto":
            raise RodentsegError(
                f"--device {device} with the onnx runtime needs onnxruntime's CUDA provider; "
                f"this onnxruntime has {available}. Install onnxruntime-gpu, or use --device cpu")
    elif device != "cpu":
        raise RodentsegError(f"--device must be auto, cpu or cuda[:N]; got {device!r}")
    return ["CPUExecutionProvider"], torch.device("cpu")


class OnnxSegmenter:
    """An exported rodent segmenter run by onnxruntime.

    Args:
        onnx_path: the ``.onnx`` file (fp32 or INT8) written by :mod:`rodentseg.export`.
        pre: the model's preprocessing settings.
        name: what it was loaded as (recorded in ``run.json``).
        device: ``cpu``, ``auto`` or ``cuda[:N]`` (CUDA needs onnxruntime-gpu).
        threads: intra-op threads; None follows ``torch.get_num_threads()`` (so the same
            ``OMP_NUM_THREADS`` / ``torch.set_num_threads`` limits apply to both runtimes).
        min_side: smallest side the graph takes (:func:`rodentseg.export.onnx_export.min_side`;
            64 for rodentseg-tiny); smaller frames are padded up to it.

    Attributes:
        name, pre, device: as for the torch ``Segmenter``.
        path: the folder holding the ``.onnx`` file.
        weights_sha256: sha256 of the ``.onnx`` file (a run with another runtime or
            quantization is a different run for the skip check).
        runtime: ``"onnxruntime <version> <provider>"`` plus ``int8`` when quantized.

    Raises:
        RodentsegError: the file's sha256 differs from a ``SHA256SUMS`` beside it, its weights
            hold NaN or inf, or onnxruntime cannot load it.
    """

    def __init__(self, onnx_path: Path, pre: Preprocessing, name: str, device: str = "cpu",
                 threads: int | None = None, min_side: int = 64):
        _require_onnx()
        import onnxruntime as ort

        providers, self.device = _providers(device)
        onnx_path = Path(onnx_path)
        # a SHA256SUMS beside it (written by `rodentseg export`) must agree; NaN/inf refused
        digest = verify_sha256sums(onnx_path.parent, [onnx_path.name]).get(onnx_path.name)
        check_finite_onnx(onnx_path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise RodentsegError(f"onnxruntime cannot load {onnx_path}: {e}; expected a file "
                                 "written by `rodentseg export`") from None
        self.pre = pre
        self.min_side = min_side
        self.name = name
        self.onnx_path = Path(onnx_path)
        self.path = self.onnx_path.parent
        self.weights_sha256 = digest or sha256_file(self.onnx_path)
        self.runtime = (f"onnxruntime {ort.__version__} {self.session.get_providers()[0]}"
                        + (" int8" if self.onnx_path.name == INT8_FILE else ""))

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """Rodent probability per pixel.

        Args:
            frames: (B, H, W, 3) RGB or (B, H, W) grey, uint8 in [0, 255].

        Returns:
            (B, H, W) float32 probabilities in [0, 1], in the frames' pixel grid.

        Raises:
            RodentsegError: the model returned a non-finite value (``check_finite_output``).
        """
        check_frames(frames)
        h, w = frames.shape[1:3]
        luma = frames_to_luma(frames, self.pre, self.min_side)
        logits = self.session.run(None, {"luma": luma})[0]
        return check_finite_output(torch.sigmoid(torch.from_numpy(logits[:, 0, :h, :w])).numpy(),
                                   self.name)


def cache_root() -> Path:
    """``$RODENTSEG_CACHE`` or ``~/.cache/rodentseg``."""
    return Path(os.environ.get("RODENTSEG_CACHE", Path.home() / ".cache" / "rodentseg"))


def _cached_export(torch_model) -> Path:
    """The cache folder holding ``torch_model``'s fp32 ONNX export, made on first use."""
    final = cache_root() / "onnx" / torch_model.weights_sha256[:16]
    if (final / ONNX_FILE).is_file() and (final / CONFIG_FILE).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    # Build in a private folder, then rename: concurrent workers (Ray) never see a half file.
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        export_segmenter(torch_model, tmp / ONNX_FILE)
        shutil.copy2(torch_model.path / CONFIG_FILE, tmp / CONFIG_FILE)
        info = {"source": torch_model.name, "source_weights_sha256": torch_model.weights_sha256,
                "note": "exported on first use by load_onnx_model"}
        (tmp / EXPORT_FILE).write_text(json.dumps(info, indent=2) + "\n")
        write_sha256sums(tmp, [ONNX_FILE])  # a damaged cached file is then refused at load
        if not ((final / ONNX_FILE).is_file() and (final / CONFIG_FILE).is_file()):
            shutil.rmtree(final, ignore_errors=True)  # incomplete (made by hand or an old copy)
        try:
            os.replace(tmp, final)
        except OSError:
            pass  # another worker published the same export first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_onnx_model(model_name_or_dir: str, int8: bool = False, device: str = "cpu",
                    threads: int | None = None) -> OnnxSegmenter:
    """Load a segmenter for onnxruntime (see the module docstring for where files come from).

    Args:
        model_name_or_dir: a folder written by ``rodentseg export``, a registry name
            (``rodentseg-tiny``) or a torch model folder (exported to the cache on first use).
        int8: use the INT8 model (only from an export folder made with ``--int8``).
        device: ``cpu``, ``auto`` or ``cuda[:N]`` (CUDA needs onnxruntime-gpu).
        threads: onnxruntime intra-op threads (None: ``torch.get_num_threads()``).

    Raises:
        RodentsegError: onnxruntime missing; INT8 asked for without an export folder holding
            it (the message gives the export command); an unknown model name; a file
            onnxruntime cannot load.
    """
    _require_onnx()
    _providers(device)  # an unusable device fails before any export work
    path = Path(model_name_or_dir)
    if (path / EXPORT_FILE).is_file():
        folder, name = path, str(path)
        if not (folder / (INT8_FILE if int8 else ONNX_FILE)).is_file():
            raise RodentsegError(
                f"{folder} has no {INT8_FILE if int8 else ONNX_FILE}; found "
                f"{sorted(p.name for p in folder.iterdir())}. Export it with: rodentseg export "
                f"--model MODEL --format onnx{' --int8' if int8 else ''} --out {folder} "
                "--overwrite")
    elif int8:
        raise RodentsegError(
            f"INT8 needs an export folder made from your own frames: run `rodentseg export "
            f"--model {model_name_or_dir} --format onnx --int8 --frames YOUR_VIDEO --out DIR`, "
            "then pass --model DIR (or use --runtime onnx, fp32, which needs no export step)")
    else:
        from rodentseg.models import load_model

        torch_model = load_model(model_name_or_dir, "cpu")
        folder, name = _cached_export(torch_model), model_name_or_dir
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        pre, smallest = Preprocessing.from_dict(config["rodentseg"]), min_side(config)
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise RodentsegError(f"{folder / CONFIG_FILE} is missing or has no 'rodentseg' block "
                             f"({e}); expected the config copied by `rodentseg export`") from None
    return OnnxSegmenter(folder / (INT8_FILE if int8 else ONNX_FILE), pre, name, device, threads,
                         smallest)


def load_runtime(model_name_or_dir: str, device: str = "auto", runtime: str = "torch",
                 threads: int | None = None):
    """Load a segmenter for one of :data:`RUNTIMES`.

    Returns:
        A torch ``Segmenter`` (``torch``) or an :class:`OnnxSegmenter` (``onnx``, ``onnx-int8``).

    Raises:
        RodentsegError: an unknown runtime (the message lists them), or what the loaders raise.
    """
    if runtime == "torch":
        from rodentseg.models import load_model

        return load_model(model_name_or_dir, device)
    if runtime in ("onnx", "onnx-int8"):
        return load_onnx_model(model_name_or_dir, runtime == "onnx-int8", device, threads)
    raise RodentsegError(f"--runtime must be one of {list(RUNTIMES)}; got {runtime!r}")
