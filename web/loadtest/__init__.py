"""``peerlearn loadtest``: headless participants against a running server."""
