"""rodentseg: per-animal masks and identities for rodent videos."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rodentseg")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from rodentseg.errors import RodentsegError  # noqa: E402

__all__ = ["DEFAULT_MODEL", "RodentsegError", "__version__"]

#: The embedded model ``rodentseg segment`` uses unless ``--model`` names another (kept here, not
#: in :mod:`rodentseg.models`, so that building the command line does not import torch).
DEFAULT_MODEL = "rodentseg-tiny"
