"""The REST API: one module per resource, each exposing ``api: ApiRegistry``.

``MODULES`` lists them all; the app factory registers each one's routes and documents them in
the OpenAPI document in this order.
"""

from __future__ import annotations

MODULES = (
    "web.api.auth",
    "web.api.users",
    "web.api.notifications",
    "web.api.sessions",
    "web.api.bookings",
    "web.api.feedback",
    "web.api.chat",
    "web.api.stats",
    "web.api.admin",
    "web.api.recommendations",
    "web.api.rooms",
)
