#!/usr/bin/env bash
# demo.sh: the whole system on this machine, no Docker. Starts the central and
# N agencies (default 5) as local processes on 127.0.0.1, waits for the draw,
# prints each agency's winners and a summary, and stops the central. The store
# stays in .data/server/bets.db and the logs in .data/logs/. Agencies speak
# mutual TLS (keys in .data/pki, made on first use) unless TLS=0. With KEEP=1
# the central stays up after the round, its status page on DEMO_ADMIN
# (default 127.0.0.1:8080), until Ctrl-C.
#   AGENCIES=N  PORT=12345  TLS=0|1  KEEP=0|1  DEMO_ADMIN=host:port  make demo
set -euo pipefail
cd "$(dirname "$0")/.."
n=${AGENCIES:-5}
port=${PORT:-12345}
[[ -x bin/server && -x bin/agency ]] || { echo "demo: run 'make build' first" >&2; exit 1; }
scripts/prepare-data.sh "$n"
mkdir -p .data/server .data/logs
server_tls=() agency_tls=()
if [[ ${TLS:-1} == 1 ]]; then
  go run ./scripts/certs -out .data/pki -agencies "$n" >/dev/null
  server_tls=(TLS_CERT=.data/pki/server.crt TLS_KEY=.data/pki/server.key TLS_CLIENT_CA=.data/pki/ca.crt TLS_REQUIRED=true)
fi

# The status page: on with KEEP=1 (the demo's central otherwise lives about
# a second), on 127.0.0.1:8080 unless DEMO_ADMIN names another address.
admin=${DEMO_ADMIN:-}
[[ ${KEEP:-0} == 1 && -z $admin ]] && admin=127.0.0.1:8080
start=$(date +%s%N)
env "${server_tls[@]}" SERVER_CONFIG=server/config.ini SERVER_IP=127.0.0.1 SERVER_PORT="$port" AGENCIES="$n" \
  DB_PATH=.data/server/bets.db ADMIN_ADDR="$admin" bin/server >.data/logs/server.log 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do # up to 10 s for the central to listen (agencies would retry anyway)
  grep -q 'action: listen | result: success' .data/logs/server.log 2>/dev/null && break
  if ! kill -0 "$server" 2>/dev/null; then
    cat .data/logs/server.log >&2
    if grep -q 'action: admin_listen | result: fail.*address already in use' .data/logs/server.log; then
      echo "demo: $admin is in use; pick another: make demo DEMO_ADMIN=127.0.0.1:8081" >&2
    elif grep -q 'action: listen | result: fail.*address already in use' .data/logs/server.log; then
      echo "demo: port $port is in use; pick another: make demo PORT=$((port + 5))" >&2
    fi
    exit 1
  fi
  sleep 0.1
done

pids=()
for i in $(seq 1 "$n"); do
  if [[ ${TLS:-1} == 1 ]]; then
    agency_tls=(CLI_TLS_CA=.data/pki/ca.crt "CLI_TLS_CERT=.data/pki/agency-$i.crt" "CLI_TLS_KEY=.data/pki/agency-$i.key")
  fi
  env "${agency_tls[@]}" CLI_CONFIG=client/config.yaml CLI_ID="$i" CLI_SERVER_ADDRESS=127.0.0.1:"$port" \
    CLI_DATA_PATH=.data/agency-"$i".csv bin/agency >".data/logs/agency-$i.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in $(seq 1 "$n"); do
  if ! wait "${pids[$((i - 1))]}"; then
    failed=$((failed + 1))
    echo "agency $i: FAILED, see .data/logs/agency-$i.log:" >&2
    grep 'result: fail' ".data/logs/agency-$i.log" | tail -3 >&2 || true
  fi
done
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
if [[ ${KEEP:-0} == 1 ]]; then
  echo "demo: the round is over; the central stays up: status page http://$admin/ (Ctrl-C stops it)"
  trap 'kill -TERM $server 2>/dev/null || true' INT TERM
  wait "$server" || true
  trap - INT TERM
else
  kill -TERM "$server"
  wait "$server" || failed=$((failed + 1))
fi
trap - EXIT

total=0
for i in $(seq 1 "$n"); do
  sent=$(grep -o 'apuestas_enviadas | result: success | cantidad: [0-9]*' ".data/logs/agency-$i.log" | grep -o '[0-9]*$' || echo "?")
  won=$(grep -o 'consulta_ganadores | result: success | cant_ganadores: [0-9]*' ".data/logs/agency-$i.log" | grep -o '[0-9]*$' || echo "?")
  printf 'agency %d: %7s bets sent, %s winners\n' "$i" "$sent" "$won"
  [[ $won == "?" ]] || total=$((total + won))
done
draw=$(grep -o 'action: sorteo | result: success.*' .data/logs/server.log | tail -1 || true)
tls=plaintext
[[ ${TLS:-1} == 1 ]] && tls="mutual TLS"
# The round's signed record, checked as a regulator would: its signature
# against the lottery's CA, every agency's line against its file.
if [[ ${TLS:-1} == 1 && $failed == 0 ]]; then
  data=$(mktemp -d)
  for i in $(seq 1 "$n"); do cp ".data/agency-$i.csv" "$data/"; done
  if bin/server export --db .data/server/bets.db --round .data/round.json &&
    bin/server verify-round .data/round.json --ca .data/pki/ca.crt --data "$data" >/dev/null; then
    echo "record: .data/round.json, signed by the central and verified against the agencies' files (server verify-round)"
  else
    failed=$((failed + 1))
  fi
  rm -rf "$data"
fi
echo "summary: $n agencies over $tls, $total winners, ${elapsed_ms} ms, ${draw:-no draw logged}; store .data/server/bets.db, logs .data/logs/"
exit $((failed > 0))
