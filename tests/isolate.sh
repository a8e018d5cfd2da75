#!/usr/bin/env bash
# Run a command inside a private network namespace with only loopback up.
# iroh endpoints send a UPnP probe out of every interface at bind; here there is none but lo,
# so nothing a test or benchmark starts can leave this machine.
# LAN discovery tests multicast on lo: that needs the MULTICAST flag on lo and a 224.0.0.0/4 route to it
# (`replace` so a route that already exists is fine).
set -euo pipefail
if [ "$#" -eq 0 ]; then echo "usage: tests/isolate.sh COMMAND [ARGS...]" >&2; exit 2; fi
if [ "$(id -u)" = 0 ]; then unshare_flags=(-n); else unshare_flags=(-r -n); fi
exec unshare "${unshare_flags[@]}" bash -c '
set -e
ip link set lo up
ip link set lo multicast on
ip route replace 224.0.0.0/4 dev lo
exec "$@"' isolated "$@"
