"""The PeerLearn domain: models, services, auth and events (no HTTP)."""
