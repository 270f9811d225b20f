"""What made an output: package versions and the git commit, recorded by stores, runs and benchmarks."""

from __future__ import annotations

import contextlib
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("torch", "transformers", "peft", "chromadb", "sentence-transformers")


def git_commit(mark_dirty: bool = False) -> str | None:
    """The checkout's HEAD commit (None outside a git checkout); with ``mark_dirty``, suffixed
    ``-dirty`` when tracked files differ from it."""
    here = Path(__file__).parent
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        commit = head.stdout.strip()
        if mark_dirty:
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                    capture_output=True, text=True, timeout=10)
            commit += "-dirty" if status.stdout.strip() else ""
        return commit
    return None


def package_versions(names) -> dict:
    """``{name: installed version}`` for the installed ones among ``names``."""
    out = {}
    for name in names:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def versions() -> dict:
    """``{"gist_memory": ..., "torch": ..., ..., "git": commit}``; the commit only in a git checkout."""
    from . import __version__

    out = {"gist_memory": __version__, **package_versions(PACKAGES)}
    commit = git_commit()
    if commit:
        out["git"] = commit
    return out
