"""The package version (one place: ``pgcourse.__version__`` and ``pgcourse --version`` read it)."""
__version__ = "0.1.0"
