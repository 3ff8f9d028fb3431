#!/bin/sh
# validar-echo-server.sh: check the running central's echo (course exercise 3).
# Sends a line with netcat from a throwaway busybox container attached to the
# network of the container named "server" (whatever the compose project is
# called; no netcat on the host, no published port) and compares the answer.
# Prints exactly one result line; exits 1 on failure. POSIX sh: the course
# runs it as `sh validar-echo-server.sh` (dash on Debian and Ubuntu).
fail() {
  echo "action: test_echo_server | result: fail"
  exit 1
}

dir=$(dirname "$0")
port=${SERVER_PORT:-$(sed -n 's/^[[:space:]]*SERVER_PORT[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$dir/server/config.ini" 2>/dev/null | head -n 1)}
port=${port:-12345}

running=$(docker inspect server --format '{{.State.Running}}' 2>/dev/null) || fail
[ "$running" = true ] || fail
net=$(docker inspect server --format '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' 2>/dev/null | awk '{print $1}')
[ -n "$net" ] || fail

# Bound the whole check where timeout(1) exists (coreutils, busybox).
bound=
command -v timeout >/dev/null 2>&1 && bound="timeout 20"
msg="echo-check-$$-$(date +%s)"
reply=$($bound docker run --rm --network "$net" busybox:latest \
  sh -c "printf '%s\n' '$msg' | nc -w 5 server $port" 2>/dev/null)
[ "$reply" = "$msg" ] || fail
echo "action: test_echo_server | result: success"
