#!/usr/bin/env bash
# prepare-data.sh N: make sure .data/agency-1.csv .. agency-N.csv exist.
# Missing files come from the course's zip when there is one (see below),
# otherwise from the deterministic generator (78,697 bets over N agencies),
# and it says which.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:?usage: prepare-data.sh N}
((n > 0)) || exit 0
missing=0
for i in $(seq 1 "$n"); do [[ -f .data/agency-$i.csv ]] || missing=1; done
((missing)) || exit 0
# The one lookup every program uses (internal/dataset): TP0_DATASET, then
# .data/dataset.zip, .data/datasets.zip, ../shared/tp0-dataset/dataset.zip.
zip=$(go run ./scripts/gendata -find)
if [[ -n $zip ]]; then
  echo "prepare-data: extracting the course's $zip"
  go run ./scripts/gendata -out .data -zip "$zip"
fi
for i in $(seq 1 "$n"); do
  if [[ ! -f .data/agency-$i.csv ]]; then
    echo "prepare-data: no dataset (TP0_DATASET, .data/dataset.zip, .data/datasets.zip, ../shared/tp0-dataset/dataset.zip): generating data for $n agencies instead (scripts/gendata, deterministic)"
    go run ./scripts/gendata -out .data -keep -agencies "$n" -bets "${BETS:-78697}"
    break
  fi
done
