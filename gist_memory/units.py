"""Human-readable sizes, for the CLI, benchmarks and reports."""

from __future__ import annotations


def human_bytes(nbytes: float) -> str:
    """``15360`` -> ``15.0 KiB``."""
    units, power = ("B", "KiB", "MiB", "GiB"), 0
    while nbytes >= 1024 and power < len(units) - 1:
        nbytes, power = nbytes / 1024, power + 1
    return f"{nbytes:.0f} B" if power == 0 else f"{nbytes:.1f} {units[power]}"
