"""REST endpoints: rooms (filled in by its owner)."""

from web.api.registry import ApiRegistry

api = ApiRegistry()
