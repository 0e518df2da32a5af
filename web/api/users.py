"""REST endpoints: users (filled in by its owner)."""

from web.api.registry import ApiRegistry

api = ApiRegistry()
