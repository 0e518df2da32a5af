"""Domain services; each takes the Platform and exposes async methods (no HTTP)."""
