#!/usr/bin/env bash
# demo-cluster.sh: a replicated central on this machine, no Docker. Starts
# REPLICAS centrals (default 3) of one cluster on 127.0.0.1:PORT.., and N
# agencies (default 5) that know every node; kills the leader with kill -9
# in the middle of the round; waits for the agencies (they go on with the new
# leader); restarts the killed node and lets it catch up; then compares the
# replicas' stores. A new round every run: the stores are in .data/cluster/.
#   REPLICAS=3  AGENCIES=5  PORT=12345  make demo REPLICAS=3
set -euo pipefail
cd "$(dirname "$0")/.."
r=${REPLICAS:-3}
n=${AGENCIES:-5}
port=${PORT:-12345}
[[ -x bin/server && -x bin/agency ]] || { echo "demo: run 'make build' first" >&2; exit 1; }
scripts/prepare-data.sh "$n"
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
  SERVER_CONFIG=server/config.ini SERVER_IP=127.0.0.1 SERVER_PORT=$((port + k - 1)) AGENCIES="$n" \
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

start=$(date +%s%N)
apids=()
for i in $(seq 1 "$n"); do
  CLI_CONFIG=client/config.yaml CLI_ID="$i" CLI_SERVER_ADDRESS="$addrs" CLI_DATA_PATH=.data/agency-"$i".csv \
    CLI_BATCH_WINDOW=2 CLI_BATCH_MAXAMOUNT=100 bin/agency >".data/logs/agency-$i.log" 2>&1 &
  apids+=($!)
done
# In the middle of the round: kill -9 the leader.
for _ in $(seq 1 200); do
  (($(grep -c 'action: apuesta_recibida | result: success' ".data/logs/node-$lead.log" || true) >= 100)) && break
  sleep 0.05
done
kill -KILL "${pids[$lead]}"
wait "${pids[$lead]}" 2>/dev/null || true
stored=$(grep -c 'action: apuesta_recibida | result: success' ".data/logs/node-$lead.log" || true)
killed=$lead
echo "demo: kill -9 of the leader, node $killed, after $stored batches"
failed=0
for i in $(seq 1 "$n"); do
  if ! wait "${apids[$((i - 1))]}"; then
    failed=$((failed + 1))
    echo "agency $i: FAILED, see .data/logs/agency-$i.log:" >&2
    grep 'result: fail' ".data/logs/agency-$i.log" | tail -3 >&2 || true
  fi
done
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
new=$(leader "$killed")
echo "demo: node ${new:-?} led the rest of the round"
for i in $(seq 1 "$n"); do
  sent=$(grep -o 'apuestas_enviadas | result: success | cantidad: [0-9]*' ".data/logs/agency-$i.log" | grep -o '[0-9]*$' || echo "?")
  won=$(grep -o 'consulta_ganadores | result: success | cant_ganadores: [0-9]*' ".data/logs/agency-$i.log" | grep -o '[0-9]*$' || echo "?")
  printf 'agency %d: %7s bets sent, %s winners\n' "$i" "$sent" "$won"
done

# The killed node comes back from its own files and catches up.
start_node "$killed"
want=$(status "$new")
for _ in $(seq 1 200); do
  [[ $(status "$killed") == "$want" && $want != 0 ]] && break
  sleep 0.1
done
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
trap - EXIT

sums=()
for k in $(seq 1 "$r"); do
  sum=$(bin/server export --db ".data/cluster/node-$k/bets.db" --csv - | sha256sum | cut -c1-16)
  rows=$(bin/server export --db ".data/cluster/node-$k/bets.db" --csv - | wc -l)
  win=$(bin/server export --db ".data/cluster/node-$k/bets.db" --winners - | tail -n +2 | wc -l)
  note=""
  [[ $k == "$killed" ]] && note=" (killed, restarted, caught up)"
  printf 'replica %d: %d bets, bets.csv sha256 %s…, %d winners%s\n' "$k" "$rows" "$sum" "$win" "$note"
  sums+=("$sum $rows $win")
done
same=1
for s in "${sums[@]}"; do [[ $s == "${sums[0]}" ]] || same=0; done
if ((same && failed == 0)); then
  echo "summary: the leader was killed with kill -9 mid-round and the round finished exactly once: $r identical replicas, ${elapsed_ms} ms; logs .data/logs/node-*.log"
else
  echo "summary: FAILED: $failed agencies failed, replicas identical: $same" >&2
  exit 1
fi
