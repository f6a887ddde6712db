"""The package version (one place: ``pgcourse.__version__`` and ``pgcourse --version`` read it)."""
__version__ = "0.1.0"


def package_versions() -> dict[str, str]:
    """Versions that decide the numbers of a run: pgcourse, torch, gymnasium, numpy and Python (saved with
    every run and every sweep trial, so a run that no longer reproduces can be traced to an upgrade)."""
    import platform
    from importlib import metadata

    versions = {"pgcourse": __version__, "python": platform.python_version()}
    for name in ("torch", "gymnasium", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
