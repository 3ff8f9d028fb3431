#!/bin/sh
# generar-compose.sh [--single-bet] FILE N: write the Docker Compose file for
# the central and N agencies (client1..clientN). Backed by scripts/compose
# (Go, no Python). POSIX sh: the course runs it as `sh generar-compose.sh`.
# --single-bet: every agency sends the statement's one bet (exercise 5).
set -eu
# The course exercise this delivery is: main (the whole system) or ej1..ej8.
# Branches ej1..ej8 (make branches) differ from main in this line only.
EXERCISE=main
here=$(cd "$(dirname "$0")" && pwd)
single=
if [ "${1:-}" = "--single-bet" ]; then
  single=-single-bet
  shift
fi
go -C "$here" build -o bin/generar-compose ./scripts/compose
exec "$here/bin/generar-compose" -exercise "$EXERCISE" $single "$@"
