#!/bin/sh
# generar-compose.sh FILE N: write the Docker Compose file for the central and
# N agencies (client1..clientN). Backed by scripts/compose (Go, no Python).
# POSIX sh: the course runs it as `sh generar-compose.sh FILE N`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
go -C "$here" build -o bin/generar-compose ./scripts/compose
exec "$here/bin/generar-compose" "$@"
