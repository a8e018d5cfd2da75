#!/usr/bin/env bash
# Run a command inside a private network namespace with only loopback up.
# iroh endpoints send a UPnP probe out of every interface at bind; here there is none but lo,
# so nothing a test or benchmark starts can leave this machine.
set -euo pipefail
if [ "$#" -eq 0 ]; then echo "usage: tests/isolate.sh COMMAND [ARGS...]" >&2; exit 2; fi
if [ "$(id -u)" = 0 ]; then unshare_flags=(-n); else unshare_flags=(-r -n); fi
exec unshare "${unshare_flags[@]}" bash -c 'ip link set lo up && exec "$@"' isolated "$@"
