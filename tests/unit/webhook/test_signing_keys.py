"""Signing keys from the environment or a mounted Secret, re-read on rotation without a restart.

The folder is laid out as the kubelet lays out a Secret volume: the visible files are symlinks
through ``..data``, which points at a timestamped directory; an update writes a new directory and
swaps ``..data`` atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qstash_operator.adapters.signing_keys import CURRENT_FILE, NEXT_FILE, SigningKeySource
from qstash_operator.domain.errors import SettingsError
from qstash_operator.settings import QStashSettings
from tests.unit.webhook import support
from tests.unit.webhook.conftest import MakeClient, unreachable_kube


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def project(folder: Path, version: str, current: str, following: str) -> None:
    """Write a Secret volume update the way the kubelet does (new dir, atomic ..data swap)."""
    data = folder / f"..{version}"
    data.mkdir()
    (data / CURRENT_FILE).write_text(current)
    (data / NEXT_FILE).write_text(following)
    link = folder / "..data_tmp"
    link.symlink_to(data.name)
    os.replace(link, folder / "..data")
    for name in (CURRENT_FILE, NEXT_FILE):
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(Path("..data") / name)


def source(folder: Path, ticks: Ticks) -> SigningKeySource:
    keys = SigningKeySource.from_settings(QStashSettings(signing_keys_dir=folder), monotonic=ticks)
    keys.load()
    return keys


def test_environment_keys_are_used_as_given() -> None:
    keys = SigningKeySource.from_settings(support.settings().qstash)
    loaded = keys.load()
    assert (loaded.current.reveal(), loaded.next.reveal()) == (
        support.CURRENT_KEY,
        support.NEXT_KEY,
    )
    assert support.CURRENT_KEY not in repr(loaded)


def test_a_rotated_secret_is_picked_up_after_the_recheck_interval(tmp_path: Path) -> None:
    ticks = Ticks()
    project(tmp_path, "2026_11_28_10_00", support.CURRENT_KEY, support.NEXT_KEY)
    keys = source(tmp_path, ticks)
    project(tmp_path, "2026_11_28_10_05", support.NEXT_KEY, support.ROTATED_KEY)

    ticks.now += 0.5  # within the recheck interval: still the old pair, no file I/O
    assert keys.keys().current.reveal() == support.CURRENT_KEY
    ticks.now += 1.0
    rotated = keys.keys()
    assert (rotated.current.reveal(), rotated.next.reveal()) == (
        support.NEXT_KEY,
        support.ROTATED_KEY,
    )


def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    ticks = Ticks()
    project(tmp_path, "v1", support.CURRENT_KEY, support.NEXT_KEY)
    keys = source(tmp_path, ticks)
    for _ in range(5):
        ticks.now += 2
        keys.keys()
    assert keys.reloads == 1


def test_a_half_finished_swap_keeps_the_last_good_keys(tmp_path: Path) -> None:
    ticks = Ticks()
    project(tmp_path, "v1", support.CURRENT_KEY, support.NEXT_KEY)
    keys = source(tmp_path, ticks)
    (tmp_path / "..data").unlink()  # the link is gone for a moment
    ticks.now += 2
    assert keys.keys().current.reveal() == support.CURRENT_KEY
    project(tmp_path, "v2", support.CURRENT_KEY, "")  # an empty key is not a key
    ticks.now += 2
    assert keys.keys().next.reveal() == support.NEXT_KEY


def test_a_folder_without_keys_refuses_to_start_naming_the_variable(tmp_path: Path) -> None:
    keys = SigningKeySource.from_settings(QStashSettings(signing_keys_dir=tmp_path))
    with pytest.raises(SettingsError) as caught:
        keys.load()
    assert caught.value.variable == "QSTASH_SIGNING_KEYS_DIR"
    assert CURRENT_FILE in caught.value.fix


async def test_the_webhook_verifies_with_rotated_keys_without_a_restart(
    tmp_path: Path, make_client: MakeClient
) -> None:
    ticks = Ticks()
    project(tmp_path, "v1", support.CURRENT_KEY, support.NEXT_KEY)
    keys = source(tmp_path, ticks)
    client = await make_client(kube=unreachable_kube(), keys=keys)
    token = support.signed(support.BODY, at=support.JUST_AFTER_THE_HOUR, key=support.ROTATED_KEY)
    headers = {"Upstash-Signature": token}

    before = await client.post("/api/qstash/webhook", data=support.BODY, headers=headers)
    assert before.status == 401
    project(tmp_path, "v2", support.NEXT_KEY, support.ROTATED_KEY)
    ticks.now += 2
    after = await client.post("/api/qstash/webhook", data=support.BODY, headers=headers)
    assert after.status == 503  # past the signature; the API server is what is missing here
