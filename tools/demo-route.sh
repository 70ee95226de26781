#!/bin/bash
# make demo-route: start the route_guide server on a free port, run the client
# against it, stop the server. Exits with the client's status (or the
# server's, if the client succeeded but the server did not stop cleanly).
#   tools/demo-route.sh DIR             DIR holds route_guide_server and _client
#   DEMO_PORT=N                         use port N (default: a free one)
#   DEMO_WRAPPER="valgrind -q ..."      run both programs under this command
set -u
dir=$1
wrap=${DEMO_WRAPPER:-} # word-split on purpose: a command and its options
log=$(mktemp)
srv=
trap 'if [ -n "$srv" ]; then kill -KILL "$srv" 2>/dev/null; fi; rm -f "$log"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits up to $1 tenths of a second for the server to print its "listening"
# line (0) or to exit, e.g. when the port is taken (1).
wait_listening() {
  for ((i = 0; i < $1; i++)); do
    grep -q "listening on" "$log" && return 0
    kill -0 "$srv" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# A port below Linux's ephemeral range (32768+), so outgoing connections do
# not take it; if some server has it anyway, binding fails and we try another.
for attempt in 1 2 3 4 5; do
  port=${DEMO_PORT:-$((20000 + RANDOM % 12000))}
  url="tcp://127.0.0.1:$port"
  # shellcheck disable=SC2086
  $wrap "$dir/route_guide_server" "$url" >"$log" &
  srv=$!
  if wait_listening 300; then break; fi
  kill -KILL "$srv" 2>/dev/null; wait "$srv" 2>/dev/null
  srv=
  if [ -n "${DEMO_PORT:-}" ] || [ "$attempt" = 5 ]; then
    cat "$log"
    echo "demo-route: the server did not start on $url" >&2
    exit 1
  fi
done
cat "$log"
shown=$(wc -l <"$log")

# shellcheck disable=SC2086
$wrap "$dir/route_guide_client" "$url"
client_rc=$?

# SIGTERM: a graceful shutdown (5 s grace for calls in flight). Give it 20 s
# (valgrind is slow) before concluding it hangs.
kill -TERM "$srv"
for ((i = 0; i < 200; i++)); do
  kill -0 "$srv" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$srv" 2>/dev/null; then
  echo "demo-route: the server did not stop on SIGTERM" >&2
  kill -KILL "$srv"
fi
wait "$srv"
server_rc=$?
srv=
tail -n +"$((shown + 1))" "$log"

[ "$client_rc" != 0 ] && exit "$client_rc"
exit "$server_rc"
