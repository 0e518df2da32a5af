#!/usr/bin/env bash
# Install everything the tests need and run the entire suite.
#   system: Chromium (browser tests), coturn (TURN relay test), PostgreSQL and Redis (real
#   production parts; started here if they are not already answering on 127.0.0.1)
#   python: the project with its [test] extras in .venv
# Extra arguments go to pytest, e.g. ./scripts/test.sh tests/api -x
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh

apt_install chromium coturn postgresql-client redis-tools

# PostgreSQL: use PEERLEARN_TEST_POSTGRES_URL, else a local server with trust auth, else
# install/start one and give the test role a password.
if [ -z "${PEERLEARN_TEST_POSTGRES_URL:-}" ]; then
  if psql "postgresql://postgres@127.0.0.1:5432/postgres" -Atqc 'select 1' >/dev/null 2>&1; then
    export PEERLEARN_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:5432/postgres"
  else
    apt_install postgresql
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
      echo "==> starting PostgreSQL"
      $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
      for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
    $SUDO -u postgres psql -qAtc "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='peerlearn_test') THEN CREATE ROLE peerlearn_test LOGIN CREATEDB PASSWORD 'peerlearn_test'; END IF; END\$\$;" 2>/dev/null \
      || su postgres -c "psql -qAtc \"DO \\\$\\\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='peerlearn_test') THEN CREATE ROLE peerlearn_test LOGIN CREATEDB PASSWORD 'peerlearn_test'; END IF; END\\\$\\\$;\""
    export PEERLEARN_TEST_POSTGRES_URL="postgresql://peerlearn_test:peerlearn_test@127.0.0.1:5432/postgres"
  fi
fi

# Redis: use PEERLEARN_TEST_REDIS_URL, else localhost, starting a throw-away server if needed.
export PEERLEARN_TEST_REDIS_URL="${PEERLEARN_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
if ! redis-cli -u "$PEERLEARN_TEST_REDIS_URL" ping >/dev/null 2>&1; then
  apt_install redis-server
  echo "==> starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/peerlearn-test-redis.log
  for _ in $(seq 20); do redis-cli -u "$PEERLEARN_TEST_REDIS_URL" ping >/dev/null 2>&1 && break; sleep 0.5; done
fi

ensure_venv "test"
echo "==> ruff"
.venv/bin/ruff check .
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
