"""The HTTP layer: app factory, REST API, pages, WebSockets (the only package speaking HTTP)."""
