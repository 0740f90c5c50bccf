#!/usr/bin/env bash
# The Debian package, as a user gets it: `./run package`'s CPack build of the .deb, lintian
# without errors, `apt-get install ./usbnet_*.deb`, the installed agent with a simulated
# device and an installed client against it (the installed shim, the installed dissector on
# the agent's capture), `systemd-analyze verify` of the installed unit, then `apt-get purge`,
# after which nothing of the package is left. Needs root (as CI is); one such test at a time on
# a machine (a lock), since it installs into the system.
#
#   deb_package.sh BUILD_DIR
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(cd "$1" && pwd)
source "$HERE/../support/agent.sh"
WORK=$(mktemp -d "$BUILD/tests/package/deb_package.XXXXXX")
AGENT_PID=
MARK=/var/lib/usbnet-package-test.installed
say() { printf '== %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  [ -f "$WORK/agent.log" ] && tail -n 20 "$WORK/agent.log" >&2
  exit 1
}
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: installing a package needs root"
  exit 77
fi

exec 9>/run/lock/usbnet-package-test.lock
flock -w 600 9 || fail "another package test holds /run/lock/usbnet-package-test.lock"
APT=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300)
cleanup() {
  stop_agent
  if [ -f "$MARK" ]; then "${APT[@]}" purge usbnet >/dev/null 2>&1 && rm -f "$MARK"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if dpkg-query -W -f='${Status}' usbnet 2>/dev/null | grep -q "installed"; then
  if [ -f "$MARK" ]; then
    say "purging the package an earlier run left installed"
    "${APT[@]}" purge usbnet >/dev/null
    rm -f "$MARK"
  else
    fail "a usbnet package is installed on this machine; this test installs and removes its own"
  fi
fi

say "cpack -G DEB"
rm -rf "$BUILD/package"
cpack --config "$BUILD/CPackConfig.cmake" >"$WORK/cpack.log" 2>&1 || fail "$(cat "$WORK/cpack.log")"
deb=$(ls "$BUILD"/package/usbnet_*.deb)
dpkg-deb -I "$deb" | sed -n '/Package:/,$p'
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' | grep -v '^/*$' >"$WORK/files"
grep -qx /usr/bin/usbnet-agent "$WORK/files" || fail "no /usr/bin/usbnet-agent in the package"
grep -q '^Depends: .*libusb-1.0-0' <(dpkg-deb -f "$deb" Depends | sed 's/^/Depends: /') ||
  fail "the dependencies were not computed from the binaries: $(dpkg-deb -f "$deb" Depends)"

say "lintian"
lintian --fail-on error --tag-display-limit 0 "$deb" >"$WORK/lintian.log" 2>&1 ||
  fail "lintian: $(cat "$WORK/lintian.log")"
cat "$WORK/lintian.log"

say "apt-get install $deb"
touch "$MARK"
"${APT[@]}" install "$deb" >"$WORK/apt.log" 2>&1 || fail "apt-get install: $(cat "$WORK/apt.log")"
getent group usbnet >/dev/null || fail "the postinst did not create the group usbnet"
dpkg-query -W -f='${Conffiles}' usbnet | grep -q /etc/usbnet/agent.toml ||
  fail "/etc/usbnet/agent.toml is not a conffile"
man -w usbnet-agent >/dev/null && man -w usbnet >/dev/null && man -w 7 libusbnet >/dev/null ||
  fail "man cannot find the pages"

say "systemd-analyze verify"
SYSTEMD_LOG_LEVEL=notice systemd-analyze verify /lib/systemd/system/usbnet-agent.service \
  >"$WORK/verify.log" 2>&1 || fail "$(cat "$WORK/verify.log")"
[ -s "$WORK/verify.log" ] && fail "systemd-analyze verify: $(cat "$WORK/verify.log")"

say "the installed agent with a simulated device, the installed client against it"
start_agent "$WORK/agent.log" /usr/bin/usbnet-agent --config /etc/usbnet/agent.toml \
  --listen 127.0.0.1:0 --no-usb --simulate loopback --export '1209:*' --pcap "$WORK/agent.pcap" \
  --state-dir "$WORK/state"
/usr/bin/usbnet list --agent "127.0.0.1:$PORT" | grep -q 1209:0001 || fail "usbnet list"
# usbnet run finds the installed shim from its own executable.
/usr/bin/usbnet run --agent "127.0.0.1:$PORT" --devices '1209:*' lsusb -v -d 1209:0001 \
  >"$WORK/lsusb.out" 2>&1 || fail "usbnet run lsusb: $(cat "$WORK/lsusb.out")"
grep -q 'iProduct.*Loopback' "$WORK/lsusb.out" || grep -q "bInterfaceClass *255" "$WORK/lsusb.out" ||
  fail "lsusb -v through the installed shim: $(cat "$WORK/lsusb.out")"
stop_agent
if command -v tshark >/dev/null; then
  # (-G must come first.)
  tshark -G protocols 2>/dev/null | grep -q '^usbnet URB protocol' ||
    fail "Wireshark does not load the installed dissector"
  tshark -o gui.console_open:NEVER -r "$WORK/agent.pcap" -Y 'usb.urb_type == 67' 2>/dev/null |
    grep -q . || fail "the agent's capture does not decode"
fi
say "usbnet list, usbnet run lsusb -v (the installed shim), the agent's capture decoded"

say "apt-get purge usbnet"
"${APT[@]}" purge usbnet >"$WORK/apt.log" 2>&1 || fail "apt-get purge: $(cat "$WORK/apt.log")"
rm -f "$MARK"
dpkg-query -W -f='${Status}' usbnet 2>/dev/null | grep -q "ok installed" && fail "still installed"
left=()
while read -r f; do
  [ -e "$f" ] || continue
  # Directories the package shares with the system stay.
  if [ -d "$f" ] && [ -n "$(ls -A "$f")" ]; then continue; fi
  case "$f" in /usr | /usr/* | /etc | /lib | /lib/*) [ -d "$f" ] && dpkg -S "$f" >/dev/null 2>&1 && continue ;; esac
  left+=("$f")
done <"$WORK/files"
[ -e /etc/usbnet ] && left+=(/etc/usbnet)
[ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
say "nothing of the package is left (the group usbnet stays, as Debian keeps system groups)"
say "passed"
