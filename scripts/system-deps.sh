#!/usr/bin/env bash
# System pieces the test suite drives for real: unixODBC + the SQLite ODBC driver (PyODBC),
# psql (launcher tests), a JDK (the JDBC tests compile a recording driver), pgjdbc + Node.js/npm
# (tests/runtimes: the Java and Node.js hooks), and the local PostgreSQL server on 127.0.0.1:5432.
# Idempotent; installs only what is missing. Needs root for apt-get (CI and dev machines are).
set -euo pipefail

need=()
command -v odbcinst >/dev/null 2>&1 || need+=(unixodbc odbcinst)
[ -e /usr/lib/x86_64-linux-gnu/odbc/libsqlite3odbc.so ] || ls /usr/lib/*/odbc/libsqlite3odbc.so >/dev/null 2>&1 || need+=(libsqliteodbc)
[ -e /usr/include/sql.h ] || need+=(unixodbc-dev)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v javac >/dev/null 2>&1 || need+=(openjdk-17-jdk-headless)  # JDBC tests compile a driver
[ -e /usr/share/java/postgresql.jar ] || need+=(libpostgresql-jdbc-java)  # pgjdbc (runtimes tests)
# Node.js hook tests (npm packages come at test time). Debian bookworm's nodejs is 18;
# @databricks/sql 2.x declares node >= 20 (this machine kind ships 20 with npm).
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: installing ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "system-deps: missing ${need[*]} (install them with your package manager)" >&2
  fi
fi

if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "system-deps: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
fi
