#!/usr/bin/env bash
# usbmon captures (USBNET_PCAP in the shim, usbnet-agent --pcap) and the usbnet dissector, read
# by Debian's tshark: what Wireshark's own dissectors make of them.
#
#   capture.sh CASE BUILD_DIR
#
#   descriptors  list_devices and control_demo under the shim: the descriptors as GET_DESCRIPTOR
#                answers (device, configuration: idVendor, interface class), control_demo's
#                vendor requests with their setup packets, its STALL as -EPIPE
#   hid          hid_read on the simulated mouse: the report descriptor request, the input
#                reports as HID data, byte for byte what the program printed
#   iso          iso_capture on the simulated audio device: isochronous URBs with their packet
#                descriptors and data
#   bulk         bulk_loopback: every byte it sent out, seen coming back in; the agent's own
#                --pcap of the same run decodes the same bulk data
#   killed       a program killed with SIGKILL while streaming: its capture still reads whole
#   dissector    a session captured on loopback (tcpdump), decoded by src/wireshark/usbnet.lua:
#                every trans_id of the shim's USBNET_TRACE appears decoded; a malformed frame
#                is marked malformed and the frames around it still decode
#
# USBNET_CAPTURE_PRELOAD: the LD_PRELOAD value that loads the shim (CMake puts the sanitizer
# runtimes first in sanitizer builds).
set -euo pipefail

[ $# -eq 2 ] || { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
CASE=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(cd "$2" && pwd)
AGENT=$BUILD/src/agent/usbnet-agent
EXAMPLES=$BUILD/examples
PRELOAD=${USBNET_CAPTURE_PRELOAD:-$BUILD/src/interpose/libusbnet.so}
DISSECTOR=$HERE/../../src/wireshark/usbnet.lua
WORK=$(mktemp -d "$BUILD/tests/capture/run.XXXXXX")
AGENT_PID=

say() { printf '== [%s] %s\n' "$CASE" "$*"; }
fail() {
  printf 'FAIL [%s]: %s\n' "$CASE" "$*" >&2
  [ -n "${USBNET_CAPTURE_KEEP:-}" ] && cp -r "$WORK" "$USBNET_CAPTURE_KEEP"
  for log in "$WORK"/*.log; do [ -f "$log" ] && { echo "--- $log" >&2; tail -n 30 "$log" >&2; }; done
  exit 1
}
cleanup() {
  stop_agent
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v tshark >/dev/null || fail "tshark is not installed (Debian package tshark)"
# tshark as root warns about it on every run; the checks read its output, not that.
TSHARK=(tshark -o "gui.console_open:NEVER")
tshark_fields() {  # FILE FILTER FIELD...
  local file=$1 filter=$2
  shift 2
  local args=()
  for field in "$@"; do args+=(-e "$field"); done
  "${TSHARK[@]}" -r "$file" -Y "$filter" -T fields "${args[@]}" 2>"$WORK/tshark.log"
}

source "$HERE/../support/agent.sh"
# The agent with these arguments on a free port of 127.0.0.1, no real devices; sets PORT.
agent() {
  start_agent "$WORK/agent.log" "$AGENT" --listen 127.0.0.1:0 --no-usb --state-dir "$WORK/state" "$@"
}
# A program under the shim, its output in $WORK/NAME.out.
shim() {
  local name=$1
  shift
  env LD_PRELOAD="$PRELOAD" USBNET_AGENT="127.0.0.1:$PORT" USBNET_DEVICES='1209:*' "$@" \
    >"$WORK/$name.out" 2>"$WORK/$name.log" || fail "$name failed: $(cat "$WORK/$name.log")"
}
count() { grep -c . || true; }

case "$CASE" in
  descriptors)
    agent --simulate loopback,mouse
    export USBNET_PCAP=$WORK/shim.pcap
    shim list_devices "$EXAMPLES/list_devices" 1209:0001
    shim control_demo "$EXAMPLES/control_demo"
    unset USBNET_PCAP
    say "device descriptors answered, per device"
    vendors=$(tshark_fields "$WORK/shim.pcap" 'usb.bDescriptorType == 1 && usb.urb_type == 67' \
      usb.idVendor usb.idProduct | sort -u)
    echo "$vendors"
    grep -q '^0x1209	0x0001$' <<<"$vendors" || fail "no device descriptor of 1209:0001 decoded"
    say "configuration descriptors: the interfaces' classes"
    classes=$(tshark_fields "$WORK/shim.pcap" 'usb.bDescriptorType == 2 && usb.urb_type == 67' \
      usb.bInterfaceClass | tr ',' '\n' | sort -u)
    echo "$classes"
    grep -q '^0xff$' <<<"$classes" || fail "the loopback device's vendor interface is missing"
    say "control_demo's vendor requests, with their setup packets"
    writes=$(tshark_fields "$WORK/shim.pcap" 'usb.bmRequestType == 0x40 && usb.urb_type == 83' \
      usb.setup.bRequest | count)
    [ "$writes" -ge 1 ] || fail "no vendor OUT request decoded"
    say "its refused request is a STALL, -EPIPE"
    stalls=$(tshark_fields "$WORK/shim.pcap" 'usb.urb_status == -32' usb.urb_id | count)
    [ "$stalls" -ge 1 ] || fail "no completion with -EPIPE"
    ;;

  hid)
    agent --simulate mouse
    USBNET_PCAP=$WORK/shim.pcap shim hid_read "$BUILD/tests/capture/hid_read" 1209:0002 5
    cat "$WORK/hid_read.out"
    say "the report descriptor, decoded item by item"
    [ "$(tshark_fields "$WORK/shim.pcap" 'usbhid.item.global.report_size && usb.urb_type == 67' \
      usb.urb_id | count)" -ge 1 ] || fail "the HID report descriptor is not decoded"
    say "the input reports as HID data, as the program read them"
    reports=$(tshark_fields "$WORK/shim.pcap" 'usbhid.data' usbhid.data | tr -d ':')
    echo "$reports"
    expected=$(grep -v descriptor "$WORK/hid_read.out")
    [ "$reports" = "$expected" ] || fail "HID data '$reports', the program read '$expected'"
    ;;

  iso)
    agent --simulate audio
    USBNET_PCAP=$WORK/shim.pcap shim iso_capture "$EXAMPLES/iso_capture" 4 8 2
    say "isochronous completions with their packet descriptors"
    lines=$(tshark_fields "$WORK/shim.pcap" 'usb.transfer_type == 0 && usb.urb_type == 67' \
      usb.iso.numdesc usb.iso.iso_status)
    echo "$lines" | head -3
    [ "$(count <<<"$lines")" -ge 4 ] || fail "fewer than 4 isochronous completions"
    grep -q '^8[,	]' <<<"$lines" || fail "no completion with 8 packet descriptors"
    say "and their data"
    [ "$(tshark_fields "$WORK/shim.pcap" 'usb.iso.data' usb.urb_id | count)" -ge 1 ] ||
      fail "no isochronous data decoded"
    ;;

  bulk)
    agent --simulate loopback --pcap "$WORK/agent.pcap"
    USBNET_PCAP=$WORK/shim.pcap shim bulk_loopback "$EXAMPLES/bulk_loopback" 1209:0001 3
    stop_agent
    for side in shim agent; do
      say "$side: the bulk data sent out comes back in"
      out=$(tshark_fields "$WORK/$side.pcap" \
        'usb.transfer_type == 3 && usb.urb_type == 83 && usb.endpoint_address.direction == 0' \
        usb.capdata)
      in=$(tshark_fields "$WORK/$side.pcap" \
        'usb.transfer_type == 3 && usb.urb_type == 67 && usb.endpoint_address.direction == 1' \
        usb.capdata)
      [ "$(count <<<"$out")" -ge 3 ] || fail "$side: fewer than 3 bulk OUT submissions with data"
      [ "$out" = "$in" ] || fail "$side: the bulk IN data differs from what went out"
    done
    ;;

  killed)
    agent --simulate loopback
    env LD_PRELOAD="$PRELOAD" USBNET_AGENT="127.0.0.1:$PORT" USBNET_DEVICES='1209:*' \
      USBNET_PCAP="$WORK/shim.pcap" "$EXAMPLES/async_stream" in 4 16384 100000 \
      >"$WORK/stream.log" 2>&1 &
    stream=$!
    for _ in $(seq 100); do
      [ "$(stat -c %s "$WORK/shim.pcap" 2>/dev/null || echo 0)" -gt 200000 ] && break
      sleep 0.05
    done
    kill -KILL "$stream"
    wait "$stream" 2>/dev/null || true
    say "killed with $(stat -c %s "$WORK/shim.pcap") bytes captured"
    # Every record written before the kill reads; only the last one may be cut short (SIGKILL
    # stops a write() of several pages between two pages).
    status=0
    records=$("${TSHARK[@]}" -r "$WORK/shim.pcap" -T fields -e usb.urb_type 2>"$WORK/tshark.log" |
      count) || status=$?
    if [ "$status" -ne 0 ] || [ -s "$WORK/tshark.log" ]; then
      grep -v "Running as user\|^$" "$WORK/tshark.log" | grep -qv "appears to have been cut short" &&
        fail "tshark: $(cat "$WORK/tshark.log")"
    fi
    [ "$records" -ge 10 ] || fail "only $records records"
    say "$records records read"
    say "a program that continues the capture removes a cut record first"
    USBNET_PCAP=$WORK/shim.pcap shim list_devices "$EXAMPLES/list_devices" 1209:0001
    again=$("${TSHARK[@]}" -r "$WORK/shim.pcap" -T fields -e usb.urb_type 2>"$WORK/tshark.log" |
      count) || fail "tshark cannot read the continued capture: $(cat "$WORK/tshark.log")"
    [ "$again" -ge "$records" ] || fail "the continued capture has $again records, fewer than $records"
    ;;

  dissector)
    [ "$(id -u)" -eq 0 ] || { echo "SKIP: capturing on loopback needs root"; exit 77; }
    command -v tcpdump >/dev/null || fail "tcpdump is not installed (Debian package tcpdump)"
    agent --simulate loopback,mouse
    tcpdump -i lo -U -B 65536 -w "$WORK/lo.pcap" -Z root "tcp port $PORT" >"$WORK/tcpdump.log" 2>&1 &
    tcpdump=$!
    for _ in $(seq 100); do
      grep -q listening "$WORK/tcpdump.log" && break
      sleep 0.1
    done
    export USBNET_TRACE=$WORK/trace.txt
    shim list_devices "$EXAMPLES/list_devices" 1209:0001
    shim control_demo "$EXAMPLES/control_demo"
    shim bulk_loopback "$EXAMPLES/bulk_loopback" 1209:0001 2
    unset USBNET_TRACE
    # A malformed frame between two good ones: a HELLO, then a frame whose magic is wrong.
    exec 3<>"/dev/tcp/127.0.0.1/$PORT"
    # frame length 42; magic, HELLO, id 1; version 1, no capabilities, 5 s heartbeats, no
    # authentication, a 14-byte name
    printf '\x2a\x00\x00\x00\x00\x42\x53\x55\x01\x00\x00\x00\x01\x00\x00\x00' >&3
    printf '\x01\x00\x00\x00\x00\x00\x00\x00\x88\x13\x00\x00\x00\x0e\x00\x00' >&3
    printf 'malformed-test' >&3
    sleep 0.2
    # frame length 12: the magic is wrong
    printf '\x0c\x00\x00\x00\x78\x56\x34\x12\x10\x00\x00\x00\x02\x00\x00\x00' >&3
    sleep 0.3
    exec 3>&-
    # tcpdump writes what it has seen, packet by packet (-U): stop it once the agent's answer to
    # the bad frame (its ERROR, the last thing the test waits for) is in the file.
    for _ in $(seq 100); do
      grep -qa 'protocol error: bad magic' "$WORK/lo.pcap" && break
      sleep 0.1
    done
    sleep 0.2
    kill "$tcpdump"
    wait "$tcpdump" 2>/dev/null || true
    stop_agent
    tshark_usbnet=("${TSHARK[@]}" -X "lua_script:$DISSECTOR" -d "tcp.port==$PORT,usbnet")
    say "every trans_id of the trace decoded"
    traced=$(sed -n 's/.* trans_id=\([0-9]*\) .*/\1/p' "$WORK/trace.txt" | sort -un)
    [ "$(count <<<"$traced")" -ge 10 ] || fail "the trace has too few transfers"
    "${tshark_usbnet[@]}" -r "$WORK/lo.pcap" -Y usbnet.trans_id -T fields -e usbnet.trans_id \
      2>"$WORK/tshark.log" | tr ',' '\n' | sort -un >"$WORK/decoded.txt"
    missing=$(comm -23 <(echo "$traced") "$WORK/decoded.txt")
    [ -z "$missing" ] || fail "trans_ids in the trace but not decoded: $missing"
    say "$(count <<<"$traced") trans_ids, each one decoded"
    say "on a port other than 3241 without Decode As, found by the heuristic"
    heuristic=$("${TSHARK[@]}" -X "lua_script:$DISSECTOR" -r "$WORK/lo.pcap" -Y usbnet.trans_id \
      -T fields -e usbnet.trans_id 2>/dev/null | tr ',' '\n' | sort -un)
    missing=$(comm -23 <(echo "$traced") <(echo "$heuristic"))
    [ -z "$missing" ] || fail "the heuristic missed trans_ids: $missing"
    say "URB headers: submissions and completions with their fields"
    "${tshark_usbnet[@]}" -r "$WORK/lo.pcap" -Y 'usbnet.type == 0x0030 && usbnet.urb.type == 0' \
      -T fields -e usbnet.urb.setup.bRequest 2>/dev/null | grep -q . || fail "no control URB_SUBMIT"
    "${tshark_usbnet[@]}" -r "$WORK/lo.pcap" -Y 'usbnet.urb.status == 4' -T fields \
      -e usbnet.trans_id 2>/dev/null | grep -q . || fail "control_demo's STALL not decoded"
    "${tshark_usbnet[@]}" -r "$WORK/lo.pcap" -Y 'usbnet.type == 0x0011' -T fields \
      -e usbnet.device.idVendor 2>/dev/null | grep -q 0x1209 || fail "DEVICE_LIST not decoded"
    say "the malformed frame is marked, the HELLO before it decoded"
    "${tshark_usbnet[@]}" -r "$WORK/lo.pcap" -Y 'usbnet.hello.name == "malformed-test"' \
      -T fields -e usbnet.id 2>/dev/null | grep -q . || fail "the test's HELLO is not decoded"
    marked=$("${tshark_usbnet[@]}" -r "$WORK/lo.pcap" -Y usbnet.malformed -T fields \
      -e _ws.expert.message 2>/dev/null)
    echo "$marked"
    grep -q "bad magic" <<<"$marked" || fail "the bad frame is not marked 'bad magic'"
    [ "$(count <<<"$marked")" -eq 1 ] || fail "frames other than the bad one are marked malformed"
    say "and the agent's answer to it, a protocol error, decoded after it"
    "${tshark_usbnet[@]}" -r "$WORK/lo.pcap" -Y 'usbnet.error.text contains "bad magic"' \
      -T fields -e usbnet.error.code 2>/dev/null | grep -q . || fail "the agent's ERROR is not decoded"
    ;;

  *)
    fail "unknown case '$CASE'"
    ;;
esac
say "passed"
