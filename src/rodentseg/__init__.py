"""rodentseg: per-animal masks and identities for rodent videos."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rodentseg")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from rodentseg.errors import RodentsegError  # noqa: E402

__all__ = ["DEFAULT_MODEL", "RodentsegError", "__version__", "load_result", "segment_video"]

#: The embedded model ``rodentseg segment`` uses unless ``--model`` names another (kept here, not
#: in :mod:`rodentseg.models`, so that building the command line does not import torch).
DEFAULT_MODEL = "rodentseg-tiny"


def __getattr__(name: str):
    """``rodentseg.load_result`` and ``rodentseg.segment_video``, imported on first use (so that
    ``import rodentseg`` stays fast and does not load torch)."""
    if name == "load_result":
        from rodentseg.result import load_result

        return load_result
    if name == "segment_video":
        from rodentseg.segment import segment_video

        return segment_video
    raise AttributeError(f"module 'rodentseg' has no attribute {name!r}")
