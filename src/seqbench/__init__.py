from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seqbench")  # pyproject.toml's, as installed
except PackageNotFoundError:  # the source tree on PYTHONPATH without an install
    __version__ = "unknown"
