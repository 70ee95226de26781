#!/bin/sh
# make demo-async: the async server (answers from a timer thread) and the
# one-thread poll() client keeping 1000 calls in flight.
set -eu
dir=$1
url="tcp://127.0.0.1:${DEMO_PORT:-5556}"
"$dir/async_server" "$url" 5 &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
sleep 0.2
"$dir/async_client" "$url" 20000 1000
kill -TERM $srv
wait $srv
trap - EXIT
