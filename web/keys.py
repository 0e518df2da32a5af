"""Typed application keys (aiohttp ``web.AppKey``) for the resources the app owns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from config.settings import Settings
from control.platform import Platform

if TYPE_CHECKING:
    import jinja2

SETTINGS = web.AppKey("settings", Settings)
PLATFORM = web.AppKey("platform", Platform)
SFU = web.AppKey("sfu", Any)  # peerlearn_sfu.SfuServer
RECOMMENDER = web.AppKey("recommender", Any)  # web.recommendations.RecommenderGateway
TEMPLATES = web.AppKey("templates", Any)  # jinja2.Environment
OPENAPI = web.AppKey("openapi", dict)
#: ``create_app(background=...)``: whether loops that run by themselves (reminders, payment
#: holds, the recommender's fits) are started; tests turn them off and drive them directly.
BACKGROUND = web.AppKey("background", bool)

__all__ = [
    "BACKGROUND", "OPENAPI", "PLATFORM", "RECOMMENDER", "SETTINGS", "SFU", "TEMPLATES", "jinja2",
]
