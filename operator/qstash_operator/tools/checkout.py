"""Find the source checkout the tools and ``qstash-operator dev`` work on.

The installed package carries no CRDs or chart: those live in the git checkout. The checkout is
the first directory, walking up from the current directory and then from this package's own
location (an editable install lives inside it), that holds ``marker``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

PACKAGE_DIR: Final = Path(__file__).resolve().parent
CHART: Final = Path("charts") / "qstash-operator"
CRDS: Final = Path("crds")


class NotACheckoutError(RuntimeError):
    """No source checkout was found; the message says what was looked for and how to get one."""


def _candidates(starts: Iterable[Path]) -> Iterable[Path]:
    seen: set[Path] = set()
    for start in starts:
        for directory in (start, *start.parents):
            if directory not in seen:
                seen.add(directory)
                yield directory


def find_checkout(marker: Path, *, start: Path | None = None) -> Path:
    """The checkout root holding ``marker`` (a relative path), or :class:`NotACheckoutError`."""
    starts = [(start or Path.cwd()).resolve(), PACKAGE_DIR]
    for directory in _candidates(starts):
        if (directory / marker).exists():
            return directory
    raise NotACheckoutError(
        f"no source checkout with {marker} found above {starts[0]} or {PACKAGE_DIR}; "
        "run this from a clone of the qstash-operator repository"
    )
