"""Typed application keys (aiohttp ``web.AppKey``) for the resources the app owns.

A key whose type lives in ``web`` itself is defined next to that type and re-exported here
(``RECOMMENDER`` in ``web.recommendations``, which therefore imports no key from this
module), so that importing this module never imports it back.
"""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

from config.settings import Settings
from control.platform import Platform
from peerlearn_sfu import SfuServer
from web.recommendations import RECOMMENDER

SETTINGS = web.AppKey("settings", Settings)
PLATFORM = web.AppKey("platform", Platform)
SFU = web.AppKey("sfu", SfuServer)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
#: The OpenAPI document served at ``/api/openapi.json``.
OPENAPI = web.AppKey("openapi", dict[str, Any])
#: ``create_app(background=...)``: whether loops that run by themselves (reminders, payment
#: holds, the recommender's fits) are started; tests turn them off and drive them directly.
BACKGROUND = web.AppKey("background", bool)

__all__ = ["BACKGROUND", "OPENAPI", "PLATFORM", "RECOMMENDER", "SETTINGS", "SFU", "TEMPLATES"]
