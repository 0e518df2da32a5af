#!/usr/bin/env bash
# Install PeerLearn into .venv and run it on the embedded default (SQLite, no Redis).
# Extra arguments go to `peerlearn serve`, e.g. ./scripts/serve.sh --host 0.0.0.0 --port 8080
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh
ensure_venv ""
exec .venv/bin/peerlearn serve "$@"
