"""rodentseg: per-animal masks and identities for rodent videos."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rodentseg")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from rodentseg.errors import RodentsegError  # noqa: E402

__all__ = ["RodentsegError", "__version__"]
