#!/usr/bin/env bash
# validar-echo-server.sh: check the running central's echo (course exercise 3).
# Sends a line with netcat from a throwaway busybox container attached to the
# central's compose network (no netcat on the host, no published port) and
# compares the answer. Prints exactly one result line; exits 1 on failure.
set -uo pipefail
fail() { echo "action: test_echo_server | result: fail"; exit 1; }

port=${SERVER_PORT:-$(sed -n 's/^[[:space:]]*SERVER_PORT[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p' "$(dirname "$0")/server/config.ini" 2>/dev/null)}
port=${port:-12345}
# The network the central is attached to (compose prefixes it with the project name).
net=$(docker inspect server --format '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' 2>/dev/null | awk '{print $1}')
running=$(docker inspect server --format '{{.State.Running}}' 2>/dev/null)
[[ -n $net && $running == true ]] || fail

msg="echo-check-$$-$RANDOM"
reply=$(timeout 15 docker run --rm --network "$net" busybox:latest \
  sh -c "printf '%s\n' '$msg' | nc -w 5 server $port" 2>/dev/null)
[[ $reply == "$msg" ]] || fail
echo "action: test_echo_server | result: success"
