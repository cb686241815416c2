"""The GitOps image build-and-promote service (see README.md)."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("pipeline")  # pyproject's, as installed: one place to bump it
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
