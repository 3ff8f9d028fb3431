#!/bin/sh
# branches.sh [REV]: create (or move) the delivery branches ej1..ej8 at REV
# (default HEAD). Each is one commit on top of REV that changes one line,
# generar-compose.sh's EXERCISE=main, to EXERCISE=ejN: the course's tests
# `git switch ejN` and generate the compose file there. The working tree and
# the current branch are not touched. POSIX sh.
set -eu
cd "$(dirname "$0")/.."
rev=$(git rev-parse --verify "${1:-HEAD}^{commit}")
short=$(git rev-parse --short "$rev")
mode=$(git ls-tree "$rev" generar-compose.sh | cut -d' ' -f1)
[ -n "$mode" ] || { echo "branches: no generar-compose.sh at $short" >&2; exit 1; }
tmp=$(mktemp)
idx=$(mktemp)
trap 'rm -f "$tmp" "$idx"' EXIT
for n in 1 2 3 4 5 6 7 8; do
  git show "$rev:generar-compose.sh" | sed "s/^EXERCISE=main\$/EXERCISE=ej$n/" >"$tmp"
  grep -q "^EXERCISE=ej$n\$" "$tmp" || { echo "branches: generar-compose.sh at $short has no EXERCISE=main line" >&2; exit 1; }
  blob=$(git hash-object -w "$tmp")
  rm -f "$idx"
  GIT_INDEX_FILE=$idx git read-tree "$rev"
  GIT_INDEX_FILE=$idx git update-index --cacheinfo "$mode,$blob,generar-compose.sh"
  tree=$(GIT_INDEX_FILE=$idx git write-tree)
  commit=$(git commit-tree "$tree" -p "$rev" -m "Exercise $n: generar-compose.sh says EXERCISE=ej$n

Made by make branches from $short; it differs from it in that line only.")
  git branch -f "ej$n" "$commit" >/dev/null
  echo "branches: ej$n at $(git rev-parse --short "$commit") (from $short)"
done
echo "branches: push them with: git push -f origin ej1 ej2 ej3 ej4 ej5 ej6 ej7 ej8"
