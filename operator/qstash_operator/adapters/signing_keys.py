"""Where the webhook gets QStash's two signing keys, and how it notices a rotation.

Two sources, chosen by :class:`~qstash_operator.settings.Settings`:

- the environment (``QSTASH_CURRENT_SIGNING_KEY`` / ``QSTASH_NEXT_SIGNING_KEY``), fixed for the
  life of the process;
- a folder (``QSTASH_SIGNING_KEYS_DIR``), normally a mounted Kubernetes Secret, holding two files
  named like the variables. The kubelet rotates such a volume by writing a new hidden directory and
  swapping the ``..data`` symlink, so the files are ``stat``-ed *through* their symlinks and a
  change of inode, size or mtime means "read again". Rotating keys then needs no restart.

The check is throttled (:data:`RECHECK_SECONDS`) so a burst of deliveries at a minute boundary
costs two ``stat`` calls per second, not two per delivery. A half-written or missing file during
a swap keeps the last good pair and logs a warning; the process never runs without keys, because
:meth:`SigningKeySource.load` refuses to start without a complete pair.

Key values are held in :class:`~qstash_operator.settings.Secret` and never logged.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from qstash_operator.domain.errors import SettingsError
from qstash_operator.settings import QStashSettings, Secret

logger = logging.getLogger(__name__)

CURRENT_FILE: Final = "QSTASH_CURRENT_SIGNING_KEY"
NEXT_FILE: Final = "QSTASH_NEXT_SIGNING_KEY"
RECHECK_SECONDS: Final = 1.0
"""How stale a rotated key may be: the kubelet itself takes up to a minute to project a changed
Secret, so one more second is invisible, and it bounds the cost to two stats a second."""


@dataclasses.dataclass(frozen=True)
class SigningKeys:
    current: Secret
    next: Secret
    origin: str  # "environment" or the folder; safe to log


_Stamp = tuple[int, int, int, int]  # device, inode, size, mtime (ns)


def _stamp(path: Path) -> _Stamp:
    info = os.stat(path)  # follows the ..data symlink, so a swapped volume shows a new inode
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


class SigningKeySource:
    """The keys to verify with now. Cheap to call on every delivery."""

    def __init__(
        self,
        *,
        directory: Path | None,
        environment: SigningKeys | None,
        monotonic: Callable[[], float] = time.monotonic,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self._directory = directory
        self._environment = environment
        self._monotonic = monotonic
        self._recheck_seconds = recheck_seconds
        self._keys: SigningKeys | None = environment if directory is None else None
        self._stamps: tuple[_Stamp, _Stamp] | None = None
        self._checked_at: float | None = None
        self.reloads = 0  # how many times the files were (re)read; for tests and logs

    @classmethod
    def from_settings(
        cls,
        qstash: QStashSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> SigningKeySource:
        environment = None
        if qstash.current_signing_key is not None and qstash.next_signing_key is not None:
            environment = SigningKeys(
                current=qstash.current_signing_key,
                next=qstash.next_signing_key,
                origin="environment",
            )
        return cls(
            directory=qstash.signing_keys_dir,
            environment=environment,
            monotonic=monotonic,
            recheck_seconds=recheck_seconds,
        )

    @property
    def loaded(self) -> bool:
        return self._keys is not None

    def load(self) -> SigningKeys:
        """First read at start-up: a missing or empty key is a :class:`SettingsError`."""
        if self._directory is None:
            if self._environment is None:
                raise SettingsError(
                    "QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY",
                    "no signing keys are configured",
                    "set both variables, or QSTASH_SIGNING_KEYS_DIR to a mounted Secret",
                )
            return self._environment
        try:
            self._checked_at = self._monotonic()
            self._read_files()
        except (OSError, ValueError) as exc:
            raise SettingsError(
                "QSTASH_SIGNING_KEYS_DIR",
                f"cannot read the signing keys in {self._directory}: {exc}",
                f"mount a Secret there with the keys {CURRENT_FILE} and {NEXT_FILE}",
            ) from exc
        assert self._keys is not None  # _read_files sets them or raises
        return self._keys

    def keys(self) -> SigningKeys:
        """The current pair, re-read from the folder when its files changed (throttled)."""
        if self._directory is not None:
            now = self._monotonic()
            if self._checked_at is None or now - self._checked_at >= self._recheck_seconds:
                self._checked_at = now
                self._refresh()
        if self._keys is None:
            raise SettingsError(
                "QSTASH_SIGNING_KEYS_DIR", "the signing keys were never loaded", "see the logs"
            )
        return self._keys

    def _paths(self) -> tuple[Path, Path]:
        assert self._directory is not None
        return self._directory / CURRENT_FILE, self._directory / NEXT_FILE

    def _refresh(self) -> None:
        current, following = self._paths()
        try:
            stamps = (_stamp(current), _stamp(following))
        except OSError as exc:
            logger.warning("signing key files unreadable, keeping the last keys: %s", exc)
            return
        if stamps == self._stamps:
            return
        try:
            self._read_files()
        except (OSError, ValueError) as exc:
            logger.warning("signing key files incomplete, keeping the last keys: %s", exc)

    def _read_files(self) -> None:
        current, following = self._paths()
        before = (_stamp(current), _stamp(following))
        values = current.read_text().strip(), following.read_text().strip()
        for path, value in zip((current, following), values, strict=True):
            if not value:
                raise ValueError(f"{path.name} is empty")
        changed = (
            self._keys is not None
            and (
                self._keys.current.reveal(),
                self._keys.next.reveal(),
            )
            != values
        )
        assert self._directory is not None
        self._keys = SigningKeys(
            current=Secret(values[0]), next=Secret(values[1]), origin=str(self._directory)
        )
        self._stamps = before
        self.reloads += 1
        if changed:
            logger.info("signing keys reloaded from %s (rotation)", self._directory)
