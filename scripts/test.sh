#!/usr/bin/env bash
# Install everything the tests need and run the entire suite.
#   system: Chromium and Firefox ESR (browser tests; Firefox through npm's puppeteer-core),
#   coturn (TURN relay test), PostgreSQL and Redis (real production parts; started here if
#   they are not already answering on 127.0.0.1)
#   python: the project with its [test] extras in .venv
# Extra arguments go to pytest, e.g. ./scripts/test.sh tests/api -x
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh

apt_install chromium firefox-esr coturn postgresql-client redis-tools
# Firefox is driven by npm's puppeteer-core (WebDriver BiDi), pinned in tests/e2e/firefox.
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
if [ ! -d tests/e2e/firefox/node_modules/puppeteer-core ]; then
  echo "==> installing puppeteer-core for the Firefox room test"
  (cd tests/e2e/firefox && npm ci --no-audit --no-fund --silent)
fi

# PostgreSQL is a required part of the suite (the data-layer and API tests run on SQLite and
# PostgreSQL; they fail, never skip, without it). Use PEERLEARN_TEST_POSTGRES_URL if given;
# else a local server that lets `postgres` in without a password, or our own test role; else
# install/start Debian's server and create that role (CREATEDB: each test makes a database).
pg_answers() { psql -w "$1" -Atqc 'select 1' >/dev/null 2>&1; }
as_postgres() {
  # Run a command as the postgres OS user, which peer authentication lets in as superuser.
  if [ "$(id -u)" = "0" ]; then (cd / && runuser -u postgres -- "$@"); else (cd / && sudo -u postgres "$@"); fi
}
TRUST_URL="postgresql://postgres@127.0.0.1:5432/postgres"
ROLE_URL="postgresql://peerlearn_test:peerlearn_test@127.0.0.1:5432/postgres"
if [ -z "${PEERLEARN_TEST_POSTGRES_URL:-}" ]; then
  if pg_answers "$TRUST_URL"; then
    export PEERLEARN_TEST_POSTGRES_URL="$TRUST_URL"
  elif pg_answers "$ROLE_URL"; then
    export PEERLEARN_TEST_POSTGRES_URL="$ROLE_URL"
  else
    apt_install postgresql
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
      # Containers have no init system to start the cluster the package created.
      version=$(ls /etc/postgresql | sort -V | tail -1)
      echo "==> starting PostgreSQL $version"
      $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
      for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
    echo "==> creating the PostgreSQL role peerlearn_test"
    as_postgres psql -v ON_ERROR_STOP=1 -qAt <<'SQL'
DO $$BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'peerlearn_test') THEN
    ALTER ROLE peerlearn_test LOGIN CREATEDB PASSWORD 'peerlearn_test';
  ELSE
    CREATE ROLE peerlearn_test LOGIN CREATEDB PASSWORD 'peerlearn_test';
  END IF;
END$$;
SQL
    export PEERLEARN_TEST_POSTGRES_URL="$ROLE_URL"
  fi
fi
if ! pg_answers "$PEERLEARN_TEST_POSTGRES_URL"; then
  echo "PostgreSQL does not answer at $PEERLEARN_TEST_POSTGRES_URL" >&2
  exit 1
fi
echo "==> PostgreSQL: $PEERLEARN_TEST_POSTGRES_URL"

# Redis: use PEERLEARN_TEST_REDIS_URL, else localhost, starting a throw-away server if needed.
export PEERLEARN_TEST_REDIS_URL="${PEERLEARN_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
redis_answers() { redis-cli -u "$PEERLEARN_TEST_REDIS_URL" ping >/dev/null 2>&1; }
if ! redis_answers; then
  apt_install redis-server  # on a machine with an init system this also starts it
  if ! redis_answers; then
    echo "==> starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp --logfile /tmp/peerlearn-test-redis.log
    for _ in $(seq 20); do redis_answers && break; sleep 0.5; done
  fi
fi
if ! redis_answers; then
  echo "Redis does not answer at $PEERLEARN_TEST_REDIS_URL" >&2
  exit 1
fi

ensure_venv "test"
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy --strict (package code; pyproject.toml [tool.mypy])"
.venv/bin/mypy
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
