#!/usr/bin/env bash
# prepare-data.sh N: make sure .data/agency-1.csv .. agency-N.csv exist.
# Missing files come from .data/dataset.zip when the course's zip is there,
# otherwise from the deterministic generator (78,697 bets over N agencies).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:?usage: prepare-data.sh N}
((n > 0)) || exit 0
missing=0
for i in $(seq 1 "$n"); do [[ -f .data/agency-$i.csv ]] || missing=1; done
((missing)) || exit 0
if [[ -f .data/dataset.zip ]]; then
  echo "prepare-data: extracting .data/dataset.zip"
  go run ./scripts/gendata -out .data -zip .data/dataset.zip
fi
for i in $(seq 1 "$n"); do
  if [[ ! -f .data/agency-$i.csv ]]; then
    echo "prepare-data: generating data for $n agencies (scripts/gendata, deterministic)"
    go run ./scripts/gendata -out .data -keep -agencies "$n" -bets "${BETS:-78697}"
    break
  fi
done
