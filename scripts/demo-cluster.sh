#!/usr/bin/env bash
# demo-cluster.sh: a replicated central on this machine, no Docker. Starts
# REPLICAS centrals (default 3) of one cluster on 127.0.0.1:PORT.., and N
# agencies (default 5) that know every node; kills the leader with kill -9
# in the middle of the round; waits for the agencies (they go on with the new
# leader); restarts the killed node and lets it catch up; then compares the
# replicas' stores; then begins a second round through the log (server round
# new) and runs it with a kill -9 of its leader too. Replicas and agencies
# speak mutual TLS (keys in .data/pki, made on first use) unless TLS=0, which
# runs the replicas in plaintext with CLUSTER_INSECURE=true (only on a
# trusted network: anything that reaches the port could speak raft).
# A new cluster every run: the stores are in .data/cluster/.
#   REPLICAS=3  AGENCIES=5  PORT=12345  TLS=0|1  make demo REPLICAS=3
set -euo pipefail
cd "$(dirname "$0")/.."
r=${REPLICAS:-3}
n=${AGENCIES:-5}
port=${PORT:-12345}
[[ -x bin/server && -x bin/agency ]] || { echo "demo: run 'make build' first" >&2; exit 1; }
scripts/prepare-data.sh "$n"
node_tls() { echo CLUSTER_INSECURE=true; }
agency_tls() { :; }
if [[ ${TLS:-1} == 1 ]]; then
  go run ./scripts/certs -out .data/pki -agencies "$n" -replicas "$r" >/dev/null
  node_tls() { echo TLS_CERT=.data/pki/central-"$1".crt TLS_KEY=.data/pki/central-"$1".key TLS_CLIENT_CA=.data/pki/ca.crt; }
  agency_tls() { echo CLI_TLS_CA=.data/pki/ca.crt CLI_TLS_CERT=.data/pki/agency-"$1".crt CLI_TLS_KEY=.data/pki/agency-"$1".key; }
fi
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
rm -rf .data/cluster
mkdir -p .data/logs
nodes="" addrs=""
for k in $(seq 1 "$r"); do
  nodes+="${nodes:+,}$k=127.0.0.1:$((port + k - 1))"
  addrs+="${addrs:+,}127.0.0.1:$((port + k - 1))"
done
pids=()
start_node() { # start_node K
  local k=$1
  mkdir -p ".data/cluster/node-$k"
  # shellcheck disable=SC2046 # node_tls's words are separate variables
  env $(node_tls "$k") ADMIN_TOKEN="$token" SERVER_CONFIG=server/config.ini SERVER_IP=127.0.0.1 SERVER_PORT=$((port + k - 1)) AGENCIES="$n" \
    DB_PATH=".data/cluster/node-$k/bets.db" CLUSTER_NODES="$nodes" CLUSTER_NODE_ID="$k" \
    ADMIN_ADDR=127.0.0.1:$((port + 100 + k)) bin/server >>".data/logs/node-$k.log" 2>&1 &
  pids[k]=$!
}
# status K: node K's applied index, from its /api/status (bash's /dev/tcp).
status() {
  local out
  out=$( (exec 3<>"/dev/tcp/127.0.0.1/$((port + 100 + $1))" && printf 'GET /api/status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && cat <&3) 2>/dev/null) || true
  grep -o '"applied_index":[0-9]*' <<<"$out" | grep -o '[0-9]*$' || echo 0
}
leader() { # the node whose last role line says leader
  local k
  for k in $(seq 1 "$r"); do
    [[ $k == "${1:-0}" ]] && continue
    if [[ $(grep -o 'action: cluster_role | result: success | nodo: [0-9]* | rol: [a-z]*' ".data/logs/node-$k.log" 2>/dev/null | tail -1) == *leader ]]; then
      echo "$k"
      return
    fi
  done
}
rm -f .data/logs/node-*.log .data/logs/agency-*.log
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done' EXIT
for k in $(seq 1 "$r"); do start_node "$k"; done
lead=""
for _ in $(seq 1 100); do lead=$(leader) && [[ -n $lead ]] && break; sleep 0.1; done
[[ -n $lead ]] || { echo "demo: no leader elected" >&2; tail -5 .data/logs/node-*.log >&2; exit 1; }
echo "demo: $r replicas on 127.0.0.1:$port..$((port + r - 1)); node $lead leads"

# round R: the agencies send their files; the leader is killed with -9 in
# the middle; the agencies go on with the new leader; the killed node comes
# back from its own files and catches up. Sets lead to the round's last leader.
failed=0
round() {
  local start apids=() i stored killed new sent won want
  start=$(date +%s%N)
  for i in $(seq 1 "$n"); do
    # shellcheck disable=SC2046 # agency_tls's words are separate variables
    env $(agency_tls "$i") CLI_CONFIG=client/config.yaml CLI_ID="$i" CLI_SERVER_ADDRESS="$addrs" CLI_DATA_PATH=.data/agency-"$i".csv \
      CLI_BATCH_WINDOW=2 CLI_BATCH_MAXAMOUNT=100 bin/agency >".data/logs/agency-$i.log" 2>&1 &
    apids+=($!)
  done
  # In the middle of the round: kill -9 the leader.
  local before
  before=$(grep -c 'action: apuesta_recibida | result: success' ".data/logs/node-$lead.log" || true)
  for _ in $(seq 1 200); do
    (($(grep -c 'action: apuesta_recibida | result: success' ".data/logs/node-$lead.log" || true) >= before + 100)) && break
    sleep 0.05
  done
  kill -KILL "${pids[$lead]}"
  wait "${pids[$lead]}" 2>/dev/null || true
  stored=$(($(grep -c 'action: apuesta_recibida | result: success' ".data/logs/node-$lead.log" || true) - before))
  killed=$lead
  echo "demo: round $1: kill -9 of the leader, node $killed, after $stored batches"
  for i in $(seq 1 "$n"); do
    if ! wait "${apids[$((i - 1))]}"; then
      failed=$((failed + 1))
      echo "agency $i: FAILED, see .data/logs/agency-$i.log:" >&2
      grep 'result: fail' ".data/logs/agency-$i.log" | tail -3 >&2 || true
    fi
  done
  echo "demo: round $1: node $(leader "$killed") led the rest of the round, $((($(date +%s%N) - start) / 1000000)) ms"
  for i in $(seq 1 "$n"); do
    sent=$(grep -o 'apuestas_enviadas | result: success | cantidad: [0-9]*' ".data/logs/agency-$i.log" | grep -o '[0-9]*$' || echo "?")
    won=$(grep -o 'consulta_ganadores | result: success | cant_ganadores: [0-9]*' ".data/logs/agency-$i.log" | grep -o '[0-9]*$' || echo "?")
    printf 'agency %d: %7s bets sent, %s winners\n' "$i" "$sent" "$won"
  done
  new=$(leader "$killed")
  start_node "$killed"
  want=$(status "$new")
  for _ in $(seq 1 200); do
    [[ $(status "$killed") == "$want" && $want != 0 ]] && break
    sleep 0.1
  done
  lead=$new
  last_killed=$killed
}

round 1
# The next round, through the log: every replica archives the first at the
# same entry. It is refused until the round is over (every agency's winners
# delivered, which the leader records just after the agencies exit).
ok=0
for _ in $(seq 1 50); do
  if bin/server round new --admin "http://127.0.0.1:$((port + 100 + lead))" --token "$token" >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.1
done
((ok)) || { echo "demo: server round new was refused" >&2; bin/server round new --admin "http://127.0.0.1:$((port + 100 + lead))" --token "$token" >&2 || true; exit 1; }
echo "demo: server round new: the second round begins on every replica"
round 2
want=$(status "$lead")
for k in $(seq 1 "$r"); do
  for _ in $(seq 1 200); do [[ $(status "$k") == "$want" ]] && break; sleep 0.1; done
done
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
trap - EXIT

sums=()
for k in $(seq 1 "$r"); do
  sum=$(bin/server export --db ".data/cluster/node-$k/bets.db" --csv - | sha256sum | cut -c1-16)
  rows=$(bin/server export --db ".data/cluster/node-$k/bets.db" --csv - | wc -l)
  win=$(bin/server export --db ".data/cluster/node-$k/bets.db" --winners - | tail -n +2 | wc -l)
  archived=$(find ".data/cluster/node-$k" -maxdepth 1 -name 'bets-*.db' | wc -l)
  note=""
  [[ $k == "$last_killed" ]] && note=" (killed in round 2, restarted, caught up)"
  printf 'replica %d: round 2: %d bets, bets.csv sha256 %s…, %d winners; %d archived round(s)%s\n' "$k" "$rows" "$sum" "$win" "$archived" "$note"
  sums+=("$sum $rows $win $archived")
done
same=1
for s in "${sums[@]}"; do [[ $s == "${sums[0]}" ]] || same=0; done
tls=plaintext
[[ ${TLS:-1} == 1 ]] && tls="mutual TLS"
if ((same && failed == 0)); then
  echo "summary: two rounds over $tls, the leader killed with kill -9 in each, each round exactly once: $r identical replicas; logs .data/logs/node-*.log"
else
  echo "summary: FAILED: $failed agencies failed, replicas identical: $same" >&2
  exit 1
fi
