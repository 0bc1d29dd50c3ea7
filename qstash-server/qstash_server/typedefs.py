"""Typed keys of the aiohttp application storage (one place, as the style anchors propose)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from qstash_server.config import ServerConfig
from qstash_server.core import Core

CONFIG_KEY: Final = web.AppKey("qstash_server.config", ServerConfig)
CORE_KEY: Final = web.AppKey("qstash_server.core", Core)
