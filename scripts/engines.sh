#!/usr/bin/env bash
# Installs (from Debian's apt, when missing) and starts the engines the multi-node tests use:
# PostgreSQL on 127.0.0.1:5432 with a `chat` role that may create databases, and the
# `redis-server` binary (each test starts its own Redis on a free loopback port).
#
# Prints the environment the tests read; use it as:  eval "$(scripts/engines.sh)"
set -euo pipefail

log() { printf '== %s\n' "$*" >&2; }

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # The package starts a Redis of its own on 6379; the tests start theirs.
  if command -v service >/dev/null 2>&1; then service redis-server stop >&2 2>/dev/null || true; fi
fi

cluster=$(pg_lsclusters --no-header 2>/dev/null | awk 'NR==1 {print $1" "$2}')
if [[ -z "${cluster}" ]]; then
  log "creating a PostgreSQL cluster"
  pg_createcluster 15 main >&2
  cluster="15 main"
fi
read -r version name <<<"${cluster}"
if ! pg_lsclusters --no-header | awk -v v="${version}" -v n="${name}" '$1==v && $2==n {print $4}' | grep -q online; then
  log "starting PostgreSQL ${version}/${name}"
  pg_ctlcluster "${version}" "${name}" start >&2
fi
port=$(pg_lsclusters --no-header | awk -v v="${version}" -v n="${name}" '$1==v && $2==n {print $3}')

# PostgreSQL runs as its own user; the tests connect over TCP with a password.
runuser -u postgres -- psql -q -p "${port}" -v ON_ERROR_STOP=1 >&2 <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chat') THEN
    CREATE ROLE chat LOGIN CREATEDB PASSWORD 'chat';
  END IF;
END $$;
SQL
# Databases left by earlier test runs.
for db in $(runuser -u postgres -- psql -p "${port}" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'chat_test_%'"); do
  runuser -u postgres -- psql -q -p "${port}" -c "DROP DATABASE IF EXISTS \"${db}\"" >&2
done

echo "export CHAT_TEST_POSTGRES=postgres://chat:chat@127.0.0.1:${port}/postgres"
echo "export CHAT_TEST_REDIS_SERVER=$(command -v redis-server)"
