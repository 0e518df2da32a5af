"""Domain services: each takes its collaborators in its constructor (``control.platform``
wires them) and exposes async methods (no HTTP)."""
