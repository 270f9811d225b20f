"""What made an output: package versions and the git commit, recorded by stores and benchmarks."""

from __future__ import annotations

import contextlib
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("torch", "transformers", "peft", "chromadb", "sentence-transformers")


def versions() -> dict:
    """``{"gist_memory": ..., "torch": ..., ..., "git": commit}``; the commit only in a git checkout."""
    from . import __version__

    out = {"gist_memory": __version__}
    for pkg in PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        if git.returncode == 0:
            out["git"] = git.stdout.strip()
    return out
