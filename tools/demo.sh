#!/bin/sh
# make demo: start the helloworld server, call it, stop it.
set -eu
dir=$1
port=${DEMO_PORT:-5555}
url="tcp://127.0.0.1:$port"
"$dir/greeter_server" "$url" &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
"$dir/greeter_client" "$url" world
kill -TERM $srv
wait $srv
trap - EXIT
