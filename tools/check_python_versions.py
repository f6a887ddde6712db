#!/usr/bin/env python3
"""Does every pinned requirement install, as a wheel, on each Python version the course supports?

For each version (3.11, 3.12, 3.13 by default) this runs pip's resolver in dry-run mode on every pin of
pyproject.toml (the dependencies and every extra: course, dev, bench, scale, tensorboard, docs), as if
installing on that version of Python, on this machine's platform:

    pip install --dry-run --ignore-installed --python-version 3.12 --only-binary=:all: --report FILE PINS...

Metadata only: no wheel is downloaded whole. pip reads each wheel's metadata with HTTP range requests
(``--use-feature=fast-deps``) and, being a dry run, installs nothing. A pip older than the one pinned here
(PIP_VERSION) downloaded every wheel in full even in a dry run (torch alone is ~0.5 GB per version), so the
script then runs the pinned pip from a temporary folder. Packages come from the configured registry
(pip's own configuration: index-url, extra-index-url, find-links).

It also checks that pyproject.toml's ``requires-python`` admits every version checked.

Exit status: 0 every version resolves; 1 some version does not (the failing pins are named);
2 the package registry cannot be reached (nothing was checked); 3 bad usage.

    python tools/check_python_versions.py                 # 3.11, 3.12 and 3.13
    python tools/check_python_versions.py --versions 3.12 --keep-reports reports/
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
PIP_VERSION = (25, 3)  # the first pip this was checked with that reads metadata only in a dry run
DEFAULT_INDEX = "https://pypi.org/simple"
EXIT_OK, EXIT_UNRESOLVED, EXIT_UNREACHABLE, EXIT_USAGE = 0, 1, 2, 3
PIP_TIMEOUT_S = 900


@dataclass
class Outcome:
    """What pip said for one Python version."""

    version: str
    ok: bool
    installed: dict[str, str] = field(default_factory=dict)  # normalised name -> version
    wheels: dict[str, str] = field(default_factory=dict)  # normalised name -> wheel file name
    problem: str = ""


def normalise(name: str) -> str:
    """PEP 503 name: ``Ray[Client]`` -> ``ray``."""
    return re.sub(r"[-_.]+", "-", name.split("[", 1)[0]).lower()


def pinned_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """Every requirement of the project and of every extra, each once, in file order; each must be ``==``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    unique = list(dict.fromkeys(requirement.strip() for requirement in requirements))
    loose = [requirement for requirement in unique if "==" not in requirement]
    if loose:
        raise SystemExit(f"error: not pinned with ==: {loose}")
    return unique


def requires_python(pyproject: Path = ROOT / "pyproject.toml") -> str:
    return tomllib.loads(pyproject.read_text())["project"].get("requires-python", "")


def admitted(version: str, specifier: str) -> bool:
    """Does ``requires-python`` (e.g. ``>=3.11,<3.14``) admit Python ``version`` (e.g. ``3.12``)?"""
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # a bare interpreter: pip carries its own copy
        from pip._vendor.packaging.specifiers import SpecifierSet

    return SpecifierSet(specifier).contains(f"{version}.0")


def pip_version(python: str, pythonpath: str | None = None) -> tuple[int, ...]:
    env = _env(pythonpath)
    text = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True, env=env,
                          check=True).stdout
    return tuple(int(part) for part in re.match(r"pip (\d+)\.(\d+)", text).groups())


def _env(pythonpath: str | None) -> dict[str, str]:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def index_urls(python: str) -> list[str]:
    """The package indexes pip is configured to use (its default, PyPI, when none is set)."""
    listing = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    urls = [url for value in re.findall(r"index-url='([^']*)'", listing) for url in value.split()]
    urls += os.environ.get("PIP_INDEX_URL", "").split() + os.environ.get("PIP_EXTRA_INDEX_URL", "").split()
    remote = [url for url in dict.fromkeys(urls) if url.startswith("http")]
    return remote or [DEFAULT_INDEX]


def unreachable(urls: list[str], timeout_s: float = 20) -> str | None:
    """Why none of the remote indexes answers, or None when one does."""
    reasons = []
    for url in urls:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/pip/", timeout=timeout_s):
                return None
        except urllib.error.HTTPError:
            return None  # it answered, even if with an error status
        except OSError as error:
            reasons.append(f"{url}: {error}")
    return "; ".join(reasons)


def bootstrap_pip(python: str, folder: Path) -> str:
    """Install the pinned pip into ``folder`` (not into any environment); returns the PYTHONPATH that runs it."""
    version = ".".join(map(str, PIP_VERSION))
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--target", str(folder), f"pip=={version}"],
                   check=True, env=_env(None))
    return str(folder)


def resolve(python: str, pythonpath: str | None, version: str, requirements: list[str], report: Path) -> Outcome:
    """Run pip's resolver for Python ``version``; the report lists what it would install."""
    command = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--python-version", version,
               "--only-binary=:all:", "--use-feature=fast-deps", "--no-cache-dir", "--quiet", "--report",
               str(report), *requirements]
    completed = subprocess.run(command, capture_output=True, text=True, env=_env(pythonpath), timeout=PIP_TIMEOUT_S)
    if completed.returncode != 0:
        lines = [line for line in completed.stderr.splitlines() if line.strip() and "is ignored" not in line]
        return Outcome(version, False, problem="\n".join(lines[-15:]))
    installs = json.loads(report.read_text())["install"]
    installed = {normalise(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}
    wheels = {normalise(item["metadata"]["name"]): item["download_info"]["url"].rsplit("/", 1)[-1]
              for item in installs}
    return Outcome(version, True, installed, wheels)


def missing_pins(outcome: Outcome, requirements: list[str]) -> list[str]:
    """Pins the resolution does not install at exactly their version (a local ``+cpu`` tag counts as equal)."""
    missing = []
    for requirement in requirements:
        name, pinned = requirement.split("==", 1)
        got = outcome.installed.get(normalise(name), "")
        if got.split("+", 1)[0] != pinned.strip():
            missing.append(f"{requirement} (resolved: {got or 'nothing'})")
    return missing


def summary(outcome: Outcome, requirements: list[str]) -> str:
    if not outcome.ok:
        return f"Python {outcome.version}: FAILED, pip could not resolve the pins:\n    " + \
            outcome.problem.replace("\n", "\n    ")
    torch = outcome.wheels.get("torch", "no torch")
    return (f"Python {outcome.version}: ok, {len(outcome.installed)} packages, all wheels "
            f"({len(requirements)} pins; torch: {torch})")


def check(versions: list[str], keep_reports: Path | None = None) -> int:
    """Resolve the pins for every version; print one line per version; return the exit status."""
    requirements = pinned_requirements()
    specifier = requires_python()
    refused = [version for version in versions if not admitted(version, specifier)]
    python = sys.executable
    problem = unreachable(index_urls(python))
    if problem:
        print(f"registry unreachable, nothing checked: {problem}")
        return EXIT_UNREACHABLE
    with tempfile.TemporaryDirectory(prefix="check-python-versions-") as scratch:
        pythonpath = None
        if pip_version(python) < PIP_VERSION:  # older pips download every wheel in full, even in a dry run
            pythonpath = bootstrap_pip(python, Path(scratch) / "pip")
        reports = keep_reports or Path(scratch)
        reports.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=len(versions)) as pool:  # network-bound: the versions run together
            outcomes = list(pool.map(lambda v: resolve(python, pythonpath, v, requirements,
                                                       reports / f"pip-report-{v}.json"), versions))
    failed = False
    for outcome in outcomes:
        print(summary(outcome, requirements))
        missing = missing_pins(outcome, requirements) if outcome.ok else []
        if missing:
            print(f"    pins not installed as pinned: {missing}")
        failed |= not outcome.ok or bool(missing)
    if refused:
        print(f"pyproject.toml's requires-python = {specifier!r} shuts out Python {', '.join(refused)}")
    return EXIT_UNRESOLVED if failed or refused else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--versions", nargs="+", default=list(PYTHON_VERSIONS), metavar="X.Y",
                        help=f"Python versions to check (default: {' '.join(PYTHON_VERSIONS)})")
    parser.add_argument("--keep-reports", type=Path, metavar="DIR",
                        help="write pip's JSON report for each version into DIR (default: discarded)")
    args = parser.parse_args(argv)
    bad = [version for version in args.versions if not re.fullmatch(r"3\.\d+", version)]
    if bad:
        print(f"error: --versions expects versions such as 3.12, got {bad}", file=sys.stderr)
        return EXIT_USAGE
    return check(args.versions, args.keep_reports)


if __name__ == "__main__":
    sys.exit(main())
