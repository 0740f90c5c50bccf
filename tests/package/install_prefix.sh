#!/usr/bin/env bash
# `cmake --install BUILD --prefix P` gives working programs: the installed agent with a
# simulated device, `usbnet list` and `usbnet run lsusb -v` (the installed shim) against it,
# from the installed paths alone; the installed unit passes `systemd-analyze verify`.
#
#   install_prefix.sh BUILD_DIR
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(cd "$1" && pwd)
WORK=$(mktemp -d "$BUILD/tests/package/install_prefix.XXXXXX")
P=$WORK/prefix
AGENT_PID=
source "$HERE/../support/agent.sh"
trap 'stop_agent; rm -rf "$WORK"' EXIT
say() { printf '== %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  [ -f "$WORK/agent.log" ] && tail -n 20 "$WORK/agent.log" >&2
  exit 1
}

cmake --install "$BUILD" --prefix "$P" >"$WORK/install.log" || fail "$(cat "$WORK/install.log")"
libdir=$(cd "$P" && ls -d lib*/usbnet | head -1)
for f in bin/usbnet bin/usbnet-agent "$libdir/libusbnet.so" include/usbnet/protocol.h \
  share/doc/usbnet/PROTOCOL.md share/man/man1/usbnet.1.gz share/man/man8/usbnet-agent.8.gz \
  share/man/man7/libusbnet.7.gz lib/systemd/system/usbnet-agent.service etc/usbnet/agent.toml; do
  [ -e "$P/$f" ] || fail "$f is not installed"
done
find "$P" -name usbnet.lua -path '*wireshark/plugins*' | grep -q . || fail "no Wireshark plugin"
say "installed into $P"

say "the programs run from there, on their own"
# The build tree must play no part: no RUNPATH into it.
for f in "$P/bin/usbnet" "$P/bin/usbnet-agent" "$P/$libdir/libusbnet.so"; do
  if readelf -d "$f" | grep -q "R.*PATH.*$BUILD"; then fail "$f still points into the build tree"; fi
done
start_agent "$WORK/agent.log" "$P/bin/usbnet-agent" --listen 127.0.0.1:0 --no-usb \
  --simulate loopback --config "$P/etc/usbnet/agent.toml" --export '*'
"$P/bin/usbnet" list --agent "127.0.0.1:$PORT" | grep -q 1209:0001 || fail "usbnet list"
if [ -z "${USBNET_PRELOAD_BEFORE_SHIM:-}" ]; then
  # usbnet run finds the installed shim from its own executable.
  "$P/bin/usbnet" run --agent "127.0.0.1:$PORT" --devices '1209:*' lsusb -v -d 1209:0001 \
    >"$WORK/lsusb.out" 2>&1 || fail "usbnet run lsusb: $(cat "$WORK/lsusb.out")"
else
  # A sanitized shim needs its runtimes preloaded first, which usbnet run does not do.
  LD_PRELOAD="$USBNET_PRELOAD_BEFORE_SHIM$P/$libdir/libusbnet.so" USBNET_AGENT="127.0.0.1:$PORT" \
    USBNET_DEVICES='1209:*' lsusb -v -d 1209:0001 >"$WORK/lsusb.out" 2>&1 ||
    fail "lsusb: $(cat "$WORK/lsusb.out")"
fi
grep -q "bInterfaceClass *255" "$WORK/lsusb.out" || fail "lsusb -v through the shim"
stop_agent
say "usbnet list, and lsusb -v under usbnet run (the installed shim)"

say "systemd-analyze verify"
unit=$P/lib/systemd/system/usbnet-agent.service
grep -q "^ExecStart=$P/bin/usbnet-agent --config $P/etc/usbnet/agent.toml$" "$unit" ||
  fail "the unit does not start the installed agent with the installed configuration"
# Its Documentation= page is looked up with man: the prefix's.
MANPATH=$P/share/man SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "$unit" >"$WORK/verify.log" 2>&1 ||
  fail "systemd-analyze verify: $(cat "$WORK/verify.log")"
if [ -s "$WORK/verify.log" ]; then fail "systemd-analyze verify: $(cat "$WORK/verify.log")"; fi
say "passed"
