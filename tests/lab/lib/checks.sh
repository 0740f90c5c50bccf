# shellcheck shell=bash
# The lab's checks: each runs plain libusb programs on the host, under LD_PRELOAD=libusbnet.so,
# against the devices the agent in the guest exports, and fails (die) with the reason.

LAB_CHECKS=(mixed_events tls lsusb mass_storage hid ccid mtp pcscd unplug no_udevd guest_lsusb agent_killed)

# The emulated devices (QEMU's IDs): storage, MTP, card reader, audio; keyboard and mouse share
# 0627:0001 and differ by their interface protocol.
STORAGE_ID=46f4:0001
LOOPBACK_ID=1209:0001  # simulated, by the guest's second agent (start-agent sim)
MTP_ID=46f4:0004
CCID_ID=08e6:4433
AUDIO_ID=46f4:0002
HID_ID=0627:0001

# shim PROGRAM ARGS...: runs a program on the host with the shim and the guest's agent, bounded.
shim() {
  LD_PRELOAD=$PRELOAD USBNET_AGENT=127.0.0.1:$AGENT_PORT timeout 120 "$@"
}

# Runs a program with the shim in the background, its output in $1; sets BG_PID. Whatever a
# check leaves running when it ends (it failed) is stopped then (stop_background).
BACKGROUND=()
shim_background() {
  local out=$1
  shift
  : >"$out"
  LD_PRELOAD=$PRELOAD USBNET_AGENT=127.0.0.1:$AGENT_PORT timeout 120 "$@" >"$out" 2>&1 &
  BG_PID=$!
  BACKGROUND+=("$BG_PID")
}

stop_background() {
  local pid
  for pid in "${BACKGROUND[@]}"; do kill "$pid" 2>/dev/null || true; done
}

# wait_for_line FILE PATTERN SECONDS: until a line of FILE matches (grep -E), or fails.
wait_for_line() {
  local file=$1 pattern=$2 limit=$3 start=$SECONDS
  until grep -qE "$pattern" "$file"; do
    ((SECONDS - start < limit)) || return 1
    sleep 0.1
  done
}

# wait_for_exit PID SECONDS: the process's exit status, or 124 if it is still running then.
wait_for_exit() {
  local pid=$1 limit=$2 start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS - start >= limit)); then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      return 124
    fi
    sleep 0.1
  done
  local status=0
  wait "$pid" || status=$?
  return "$status"
}

# ---- lsusb -v: the same descriptors inside the guest and through usbnet ---------------------
#
# Compared line by line after two normalisations, and only these:
#  - the "Bus B Device D: ID V:P names" line keeps "Device D: ID V:P": remote devices sit on
#    buses numbered from 201, and lsusb prints names there that it takes from sysfs;
#  - the text of the device descriptor's iManufacturer, iProduct and iSerial (their indices
#    stay): Debian 12's lsusb reads those three strings from sysfs, which has no entry for a
#    remote device (README, known limits). Every other string lsusb prints (iConfiguration,
#    iInterface, ...) it asks of the device, and those are compared as they are.
# The three strings themselves are then compared with list_devices (an example program that
# asks the device for every string), guest against host.

normalise_lsusb() {
  sed -E -e 's/^Bus [0-9]+ Device ([0-9]+): ID ([0-9a-f]{4}:[0-9a-f]{4}).*/Bus - Device \1: ID \2/' \
    -e 's/^(  i(Manufacturer|Product|Serial) +[0-9]+).*/\1/'
}

# One line per list_devices device block, bus number out, sorted.
normalise_list_devices() {
  sed -E 's/^Bus [0-9]+ Device/Bus - Device/' | awk '/^Bus /{if (b != "") print b; b = $0; next} {b = b "|" $0} END {if (b != "") print b}' | sort
}

# Every device of the guest (root hubs included), one line each as the topology program prints
# its "node" lines, without the bus: port path, address, ID, "hub", and its hub's address.
guest_topology() {
  guest 60 'for d in /sys/bus/usb/devices/usb* /sys/bus/usb/devices/[0-9]*-*; do
      n=${d##*/}
      case $n in *:*) continue ;; esac
      case $n in
        usb*) port=-; parent=- ;;
        *) port=${n#*-}
          case $port in *.*) p=${n%.*} ;; *) p=usb${n%%-*} ;; esac
          parent=$(printf %03d "$(cat /sys/bus/usb/devices/$p/devnum)") ;;
      esac
      hub=; [ "$(cat $d/bDeviceClass)" = 09 ] && hub=" hub"
      printf "Port %s Dev %03d ID %s:%s%s parent %s\n" "$port" "$(cat $d/devnum)" \
        "$(cat $d/idVendor)" "$(cat $d/idProduct)" "$hub" "$parent"
    done | sort'
}

# ---- TLS: the host's shim is a paired client; unpaired clients get nothing ----------------------

# The guest's agent listens on every address without --insecure, as a fresh agent on a network
# does; the host paired with it at boot (pair_with_guest), so every check runs over TLS.
check_tls() {
  local key_fp out refusals
  key_fp=$("$USBNET_CLI" key 2>&1 >/dev/null | grep -o 'SHA256:[^ ]*' | head -1)
  [ -n "$key_fp" ] || die "usbnet key printed no fingerprint"
  out=$(shim lsusb -d $STORAGE_ID 2>&1) || die "lsusb through the paired shim failed: $out"
  grep -q "ID $STORAGE_ID" <<<"$out" || die "the paired shim does not list the stick: $out"
  guest 10 "grep -F 'client connected (libusbnet' /tmp/agent.log | grep -F 'TLS, key $key_fp' >/dev/null" ||
    die "the agent's log has no TLS connection of the shim with the host's key $key_fp"
  echo "the paired shim lists the stick, over TLS with the host's key $key_fp"

  # A client that has not pinned the agent speaks plaintext to it (127.0.0.1 is loopback to the
  # host): refused, with the way in named, and nothing listed.
  local unpaired=$LAB_DIR/client-unpaired
  rm -rf "$unpaired"
  out=$(USBNET_CONFIG_DIR=$unpaired shim lsusb -d $STORAGE_ID 2>&1) || true
  ! grep -q "ID $STORAGE_ID" <<<"$out" || die "a plaintext client listed the stick: $out"
  grep -q "accepts only TLS clients with an authorized key" <<<"$out" ||
    die "the plaintext client was not told why it was refused: $out"
  echo "a plaintext client: refused ($(grep -o 'agent refused the connection[^:]*' <<<"$out" | head -1))"

  # A TLS client that pinned the agent but whose key the agent does not know: refused in the
  # handshake, its key named in the agent's log.
  local stranger=$LAB_DIR/client-stranger stranger_fp
  rm -rf "$stranger"
  USBNET_CONFIG_DIR=$stranger "$USBNET_CLI" pair "127.0.0.1:$AGENT_PORT" --yes --timeout "$USBNET_CONNECT_TIMEOUT_MS" >/dev/null 2>&1 ||
    die "usbnet pair (pinning only) with the guest's agent failed"
  stranger_fp=$(USBNET_CONFIG_DIR=$stranger "$USBNET_CLI" key 2>&1 >/dev/null | grep -o 'SHA256:[^ ]*' | head -1)
  out=$(USBNET_CONFIG_DIR=$stranger shim lsusb -d $STORAGE_ID 2>&1) || true
  ! grep -q "ID $STORAGE_ID" <<<"$out" || die "a client with an unknown key listed the stick: $out"
  grep -q "refused this client's key" <<<"$out" || die "the unknown key's client was not told: $out"
  refusals=$(guest 10 "grep -cF 'client key $stranger_fp is not in' /tmp/agent.log") || true
  ((refusals >= 1)) || die "the agent's log does not name the refused key $stranger_fp"
  echo "a client with an unknown key ($stranger_fp): refused in the TLS handshake"
}

check_lsusb() {
  # Every device of the guest but hubs: the kernel drives those, and the agent lists them as
  # topology only (opening one is refused), so lsusb -v cannot show the same of them.
  local guest_devices
  guest_devices=$(guest 60 'for d in /sys/bus/usb/devices/[0-9]*-*; do
      case $d in *:*) continue ;; esac
      [ "$(cat $d/bDeviceClass)" = 09 ] && continue
      echo "$(cat $d/busnum) $(cat $d/devnum) $(cat $d/idVendor):$(cat $d/idProduct)"
    done') || die "could not list the guest's devices: $guest_devices"
  local id
  for id in $STORAGE_ID $MTP_ID $CCID_ID $AUDIO_ID $HID_ID; do
    grep -q " $id\$" <<<"$guest_devices" || die "the guest does not see $id: $guest_devices"
  done
  [ "$(grep -c " $HID_ID\$" <<<"$guest_devices")" -eq 2 ] || die "the guest lacks the keyboard or the mouse"

  # The hubs: the host sees the guest's tree (every hub, every parent) through
  # libusb_get_parent, and cannot open a hub (the topology program checks both).
  local in_guest_tree on_host_tree host_nodes
  in_guest_tree=$(guest_topology) || die "could not read the guest's USB tree: $in_guest_tree"
  host_nodes=$(shim "$BUILD_DIR/tests/e2e/topology") || die "the topology program through usbnet failed:
$host_nodes"
  on_host_tree=$(sed -nE 's/^node Bus [0-9]+ //p' <<<"$host_nodes" | sort)
  diff -u <(echo "$in_guest_tree") <(echo "$on_host_tree") --label "guest: the USB tree (sysfs)" \
    --label "host: the USB tree (libusb_get_parent through usbnet)" ||
    die "the USB tree through usbnet differs from the guest's"
  grep -q ' hub parent -$' <<<"$on_host_tree" || die "no root hub through usbnet"
  echo "USB tree: the same $(wc -l <<<"$on_host_tree") devices and parents on both sides, $(grep -c ' hub ' <<<"$on_host_tree") of them hubs:"
  grep '^tree ' <<<"$host_nodes" | sed 's/^tree /  /'

  local host_devices host_hubs
  host_hubs=$(sed -nE 's/^node Bus ([0-9]+) Port [^ ]+ Dev ([0-9]+) ID ([0-9a-f:]+) hub .*/\1 \2/p' <<<"$host_nodes" |
    awk '{print $1 + 0, $2 + 0}')
  host_devices=$(shim lsusb 2>&1 | sed -nE 's/^Bus ([0-9]+) Device ([0-9]+): ID ([0-9a-f:]+).*/\1 \2 \3/p' |
    awk 'NR == FNR {hub[$1 " " $2] = 1; next} $1 >= 201 && !((($1 + 0) " " ($2 + 0)) in hub) {print $1 + 0, $2 + 0, $3}' \
      <(echo "$host_hubs") -)
  [ "$(wc -l <<<"$guest_devices")" -eq "$(wc -l <<<"$host_devices")" ] ||
    die "the guest has these devices:
$guest_devices
but lsusb through usbnet lists:
$host_devices"

  local bus dev host_bus compared=0 failed=0
  while read -r bus dev id; do
    # A device is the same on both sides by its address and ID (the lab's are unique so).
    host_bus=$(awk -v d="$dev" -v i="$id" '$2 == d && $3 == i {print $1}' <<<"$host_devices")
    [ "$(wc -w <<<"$host_bus")" -eq 1 ] || die "device $dev ($id) is not once in the host's list"
    local in_guest on_host
    in_guest=$(guest 60 "lsusb -v -s $bus:$dev 2>&1") || die "lsusb -v in the guest failed: $in_guest"
    on_host=$(shim lsusb -v -s "$host_bus:$dev" 2>&1) || die "lsusb -v through usbnet failed: $on_host"
    if diff -u <(normalise_lsusb <<<"$in_guest") <(normalise_lsusb <<<"$on_host") \
      --label "guest: lsusb -v -s $bus:$dev" --label "host: lsusb -v -s $host_bus:$dev (usbnet)"; then
      echo "lsusb -v, $id (guest $bus:$dev, host $host_bus:$dev): same $(wc -l <<<"$on_host") lines"
    else
      failed=$((failed + 1))
    fi
    compared=$((compared + 1))
  done <<<"$guest_devices"
  ((failed == 0)) || die "lsusb -v differs for $failed of $compared devices"

  local ids
  ids=$(awk '{print $3}' <<<"$guest_devices" | sort -u)
  for id in $ids; do
    local in_guest on_host
    in_guest=$(guest 60 "/lab/bin/list_devices $id") || die "list_devices in the guest failed: $in_guest"
    on_host=$(shim "$BUILD_DIR/examples/list_devices" "$id") || die "list_devices through usbnet failed: $on_host"
    diff -u <(normalise_list_devices <<<"$in_guest" | tr '|' '\n') \
      <(normalise_list_devices <<<"$on_host" | tr '|' '\n') \
      --label "guest: list_devices $id" --label "host: list_devices $id (usbnet)" ||
      die "list_devices (every descriptor and string) differs for $id"
    echo "list_devices $id: same descriptors and strings ($(grep -c '^Bus' <<<"$on_host") device(s))"
  done
}

# ---- mass storage: Bulk-Only Transport with plain bulk transfers ----------------------------

storage_driver() {
  guest 30 "for d in /sys/bus/usb/devices/*:1.0; do
      [ \"\$(cat \$d/../idVendor):\$(cat \$d/../idProduct)\" = $STORAGE_ID ] || continue
      basename \"\$(readlink \$d/driver 2>/dev/null || echo none)\"
    done"
}

check_mass_storage() {
  local driver
  driver=$(storage_driver) || die "could not read the guest's sysfs"
  [ "$driver" = usb-storage ] || die "the guest's usb-storage driver does not hold the stick ($driver)"
  echo "in the guest, usb-storage holds the stick: msc_check detaches it through usbnet"
  rm -f "$LAB_DIR/msc.pcap"
  USBNET_PCAP=$LAB_DIR/msc.pcap shim "$PROGRAMS/msc_check" $STORAGE_ID 100 64 "$LAB_DIR/written.bin" ||
    die "msc_check through usbnet failed"
  # The medium is a file of the host: what went through usbnet must be on it.
  cmp "$LAB_DIR/written.bin" <(dd if="$LAB_DIR/disk.img" bs=512 skip=100 count=64 status=none) ||
    die "the disk image does not hold what msc_check wrote"
  echo "the disk image holds the 64 blocks at LBA 100 that msc_check wrote"
  driver=$(storage_driver) || die "could not read the guest's sysfs"
  [ "$driver" = usb-storage ] ||
    die "after msc_check released the interface, usb-storage was not attached again ($driver)"
  echo "in the guest, usb-storage holds the stick again (attached on release)"
  # The shim's usbmon capture of the same run, as Wireshark's mass-storage dissector reads it.
  if command -v tshark >/dev/null; then
    local commands
    commands=$(tshark -r "$LAB_DIR/msc.pcap" -Y 'scsi_sbc.opcode' -T fields -e scsi_sbc.opcode \
      2>/dev/null | sort | uniq -c)
    echo "SCSI commands in the shim's capture (USBNET_PCAP), by opcode:"
    echo "$commands"
    grep -q ' 0x28$' <<<"$commands" || die "the capture shows no SCSI READ(10)"
    grep -q ' 0x2a$' <<<"$commands" || die "the capture shows no SCSI WRITE(10)"
  fi
}

# ---- HID: interrupt transfers caused by input events QEMU injects ----------------------------

# hid_events KIND EXPECTED EVENTS...: starts hid_reports through usbnet and, once it listens,
# injects each batch of QMP input events in turn, waiting for a report after each; then wants
# the reports to be EXPECTED (one per batch, separated by commas).
hid_events() {
  local kind=$1 expected=$2 out=$LAB_DIR/hid-$1.out
  shift 2
  shim_background "$out" "$PROGRAMS/hid_reports" $HID_ID "$kind" $# 30
  wait_for_line "$out" '^listening' 30 || { cat "$out"; die "hid_reports ($kind) did not start listening"; }
  local events reports=0
  for events in "$@"; do
    qmp "{\"execute\": \"input-send-event\", \"arguments\": {\"events\": $events}}" >/dev/null ||
      die "QEMU refused the input events $events"
    reports=$((reports + 1))
    local start=$SECONDS
    while (($(grep -c '^report:' "$out") < reports)) && ((SECONDS - start < 20)); do sleep 0.1; done
  done
  local status=0
  wait_for_exit "$BG_PID" 40 || status=$?
  cat "$out"
  ((status == 0)) || die "hid_reports ($kind) failed (status $status)"
  [ "$(sed -n 's/^report: //p' "$out" | paste -sd,)" = "$expected" ] ||
    die "the $kind's reports are not the expected $expected"
}

check_hid() {
  local key='{"type": "key", "data": {"down": DOWN, "key": {"type": "qcode", "data": "a"}}}'
  # A key press and release: usage 0x04 ('a') in the boot report, then an empty report.
  hid_events keyboard "00 00 04 00 00 00 00 00,00 00 00 00 00 00 00 00" \
    "[${key/DOWN/true}]" "[${key/DOWN/false}]"
  # A relative move: buttons 0, dx +7, dy -3 (0xfd), wheel 0.
  hid_events mouse "00 07 fd 00" \
    '[{"type": "rel", "data": {"axis": "x", "value": 7}}, {"type": "rel", "data": {"axis": "y", "value": -3}}]'
}

# ---- the card reader: class descriptor, class requests, CCID commands over bulk --------------

check_ccid() {
  local in_guest on_host
  in_guest=$(guest 60 "/lab/bin/ccid_check $CCID_ID 2>&1") || die "ccid_check in the guest failed: $in_guest"
  on_host=$(shim "$PROGRAMS/ccid_check" $CCID_ID 2>&1) || die "ccid_check through usbnet failed: $on_host"
  echo "$on_host"
  diff -u <(echo "$in_guest") <(echo "$on_host") --label "guest: ccid_check" --label "host: ccid_check (usbnet)" ||
    die "the card reader answers differently through usbnet"
  echo "ccid_check: the same answers in the guest and through usbnet"
}

# ---- libmtp: mtp-files and mtp-getfile (Debian's mtp-tools) through usbnet run ------------

# usbnet_run ARGS...: `usbnet run` with the guest's agent, bounded; LD_PRELOAD keeps what the
# build needs before the shim (sanitizer runtimes), usbnet run adds the shim itself.
usbnet_run() {
  LD_PRELOAD=${PRELOAD%"$SHIM"} USBNET_SHIM=$SHIM timeout 120 \
    "$BUILD_DIR/src/cli/usbnet" run --agent "127.0.0.1:$AGENT_PORT" "$@"
}

# mtp_file_id LISTING NAME: the id mtp-files gives a file of the MTP folder.
mtp_file_id() {
  awk -v name="$2" '/^File ID:/ {id = $3} $1 == "Filename:" && $2 == name {print id}' <<<"$1"
}

check_mtp() {
  local listing file id size got=$LAB_DIR/mtp-got
  listing=$(usbnet_run --devices $MTP_ID mtp-files 2>&1) || die "mtp-files through usbnet failed:
$listing"
  for file in readme.txt random.bin; do
    id=$(mtp_file_id "$listing" $file)
    [ -n "$id" ] || die "mtp-files through usbnet does not list $file:
$listing"
    size=$(stat -c %s "$MTP_DIR/$file")
    grep -A2 "Filename: $file" <<<"$listing" | grep -q "File size $size " ||
      die "mtp-files does not give $file the original's size ($size):
$listing"
    rm -f "$got"
    usbnet_run --devices $MTP_ID mtp-getfile "$id" "$got" >"$LAB_DIR/mtp-getfile.out" 2>&1 ||
      die "mtp-getfile $id ($file) through usbnet failed: $(cat "$LAB_DIR/mtp-getfile.out")"
    cmp "$MTP_DIR/$file" "$got" || die "mtp-getfile's copy of $file differs from the original"
    echo "libmtp: mtp-files lists $file (id $id, $size bytes); mtp-getfile's copy is the original, byte for byte"
  done
}

# ---- pcscd with libccid: the remote card reader and its slot's status ----------------------
#
# pcscd finds USB readers through udev, which knows nothing of remote devices; a reader.conf
# entry naming the reader by VID:PID (DEVICENAME usb:08e6/4433) makes libccid open it through
# libusb, which the shim serves. pcscd's socket is in /run/pcscd (compiled in), so pcscd and its
# clients run in a private mount namespace with a tmpfs over /run: the host's own pcscd, if
# any, is untouched. pcsc_scan lists the readers; pyscard reads the slot's state (QEMU's reader
# holds no card: empty, as GetSlotStatus says in the ccid check).

check_pcscd() {
  local dir=$LAB_DIR/pcscd
  rm -rf "$dir"
  mkdir -p "$dir/reader.conf.d"
  printf '%s\n' 'FRIENDLYNAME "usbnet remote CCID"' "DEVICENAME usb:${CCID_ID/:/\/}" \
    'LIBPATH /usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Linux/libccid.so' \
    >"$dir/reader.conf.d/usbnet"
  local namespace=(unshare --mount --propagation private)
  [ "$(id -u)" -eq 0 ] || namespace=(unshare --user --map-root-user --mount --propagation private)
  local status=0
  export -f usbnet_run
  export PRELOAD SHIM BUILD_DIR AGENT_PORT CCID_ID
  LAB_PCSCD_DIR=$dir timeout 150 "${namespace[@]}" bash "$LAB_SRC/lib/pcscd_session.sh" ||
    status=$?
  echo "pcsc_scan -r:"
  sed 's/^/  /' "$dir/readers.out"
  grep -q "usbnet remote CCID" "$dir/readers.out" || {
    tail -n 40 "$dir/pcscd.log"
    die "pcscd under usbnet did not list the remote card reader"
  }
  echo "pyscard:"
  sed 's/^/  /' "$dir/status.out"
  ((status == 0)) || {
    tail -n 40 "$dir/pcscd.log"
    die "pyscard could not read the slot's status (status $status)"
  }
  grep -q "^usbnet remote CCID.*: empty$" "$dir/status.out" ||
    die "the reader's slot is not reported empty (QEMU's reader holds no card)"
  echo "pcscd (libccid, through usbnet) serves the remote reader; its slot is empty, as in the guest"
}

# ---- unplug: QEMU removes the MTP device; the host program sees it leave and come back -------

# wait_for_count FILE PATTERN COUNT SECONDS: until COUNT lines of FILE match, or fails.
wait_for_count() {
  local file=$1 pattern=$2 count=$3 limit=$4 start=$SECONDS
  until (($(grep -cE "$pattern" "$file") >= count)); do
    ((SECONDS - start < limit)) || return 1
    sleep 0.1
  done
}

# plug_cycle HOLD: QEMU's device_del and device_add of the MTP device while hotplug_monitor on
# the host counts the hotplug events for it: exactly one departure and one arrival (whichever
# of the agent's sources, libusb's hotplug, libusb's disconnect of an open device or its own
# enumerations, sees the change first). With HOLD=hold, unplug_watch holds the device open
# meanwhile, a transfer waiting on it: the transfer must end with NO_DEVICE.
plug_cycle() {
  local hold=$1 monitor_out=$LAB_DIR/hotplug-monitor.out watch_out=$LAB_DIR/unplug.out
  local monitor watch=
  shim_background "$monitor_out" "$BUILD_DIR/examples/hotplug_monitor" 100 0 $MTP_ID
  monitor=$BG_PID
  if ! wait_for_line "$monitor_out" '^arrived' 30; then
    kill "$monitor" 2>/dev/null || true
    cat "$monitor_out"
    die "hotplug_monitor did not see the MTP device"
  fi
  if [ "$hold" = hold ]; then
    shim_background "$watch_out" "$PROGRAMS/unplug_watch" $MTP_ID 60
    watch=$BG_PID
    wait_for_line "$watch_out" '^ready' 30 || { cat "$watch_out"; die "unplug_watch did not get ready"; }
  fi
  qmp '{"execute": "device_del", "arguments": {"id": "mtp"}}' >/dev/null || die "QEMU did not unplug the MTP device"
  local start=$SECONDS
  echo "QEMU: device_del mtp"
  if ! wait_for_line "$monitor_out" '^left' 20; then
    cat "$monitor_out"
    die "the departure did not reach the host's hotplug callback"
  fi
  echo "the departure reached the host's hotplug callback within $((SECONDS - start + 1)) s"
  if [ -n "$watch" ] && ! wait_for_line "$watch_out" '^waiting for the device to return' 30; then
    cat "$watch_out"
    die "the departure did not reach unplug_watch"
  fi
  qmp "{\"execute\": \"device_add\", \"arguments\": $(mtp_device_json)}" >/dev/null ||
    die "QEMU did not plug the MTP device in again"
  start=$SECONDS
  echo "QEMU: device_add usb-mtp"
  if ! wait_for_count "$monitor_out" '^arrived' 2 20; then
    cat "$monitor_out"
    die "the arrival did not reach the host's hotplug callback"
  fi
  echo "the arrival reached the host's hotplug callback within $((SECONDS - start + 1)) s"
  # Reported once the kernel had configured it (the agent reads its record then).
  local listed
  listed=$(shim "$BUILD_DIR/examples/list_devices" $MTP_ID) || die "list_devices $MTP_ID failed: $listed"
  grep -q '^  active configuration [1-9]' <<<"$listed" ||
    die "the device came back unconfigured: $listed"
  if [ -n "$watch" ]; then
    local status=0
    wait_for_exit "$watch" 60 || status=$?
    cat "$watch_out"
    ((status == 0)) || die "unplug_watch failed (status $status)"
  fi
  # A second report of either change would come within two of the agent's enumerations.
  sleep 3
  kill "$monitor" 2>/dev/null || true
  wait "$monitor" 2>/dev/null || true
  cat "$monitor_out"
  local arrived left
  arrived=$(grep -c '^arrived' "$monitor_out") || true
  left=$(grep -c '^left' "$monitor_out") || true
  ((arrived == 2 && left == 1)) ||
    die "hotplug_monitor saw $arrived arrivals and $left departures, not 2 (present, back) and 1"
  echo "exactly one departure and one arrival"
}

check_unplug() {
  plug_cycle hold
}

# ---- no udevd: the agent notices arrivals and departures all the same ------------------------
#
# Debian's libusb hears of devices coming and going only from udevd. Here the agent runs
# without it (as in a container with /dev/bus/usb passed in): udevd is stopped and its control
# socket removed (libudev then does not even listen), the agent restarted. First nobody holds
# the device, so only the agent's own enumerations can see it leave and come back; then
# unplug_watch holds it with a transfer waiting, which must end with NO_DEVICE. udevd and the
# agent as it was come back at the end, whatever happens.

restore_udevd() {
  guest 60 'pidof systemd-udevd >/dev/null || /lib/systemd/systemd-udevd --daemon
    udevadm trigger --action=add --subsystem-match=usb && udevadm settle --timeout=30
    kill $(cat /tmp/agent.pid) && sleep 0.5; /lab/start-agent' >/dev/null ||
    echo "lab: could not restore udevd and the agent in the guest" >&2
}

check_no_udevd() {
  trap 'stop_background; restore_udevd' EXIT
  guest 30 'kill $(pidof systemd-udevd)
    for _ in $(seq 50); do pidof systemd-udevd >/dev/null || break; sleep 0.1; done
    ! pidof systemd-udevd >/dev/null || { echo "systemd-udevd does not stop"; exit 1; }
    rm -f /run/udev/control
    kill $(cat /tmp/agent.pid); sleep 0.5; /lab/start-agent' || die "could not stop udevd and restart the agent"
  echo "guest: systemd-udevd stopped, usbnet-agent restarted without it"
  echo "-- nobody holds the device"
  plug_cycle free
  echo "-- unplug_watch holds the device"
  plug_cycle hold
  guest 10 '! pidof systemd-udevd >/dev/null' || die "systemd-udevd ran during the check"
  echo "systemd-udevd never ran meanwhile"
  trap stop_background EXIT
  restore_udevd
}

# ---- the shim in the guest: its own devices local, the simulated agent's remote --------------

# Starts the guest's simulated-device agent unless it runs.
ensure_sim_agent() {
  guest 30 'kill -0 $(cat /tmp/sim-agent.pid) 2>/dev/null || /lab/start-agent sim' ||
    die "the guest's simulated-device agent does not run"
}

# lsusb and lsusb -v in the guest, plain and with the shim: with the shim, the output is the
# plain one byte for byte once the remote devices' blocks (buses from 201) are taken out, and
# those are the simulated agent's devices and the root hub they hang from. (In a sanitized build the shim comes with ASan, whose
# leak check would fail lsusb itself: it never releases its local devices, with or without the
# shim. The shim's own leaks are the end-to-end tests' business.)
check_guest_lsusb() {
  ensure_sim_agent
  guest 120 'export ASAN_OPTIONS=detect_leaks=0
    # Drops the blocks of remote devices (buses 201 and up) from lsusb -v output, with the
    # blank line that starts each block.
    drop_remote() {
      awk "
        /^Bus [0-9]+ Device [0-9]+: ID / {
          keep = (\$2 + 0 < 201); if (keep) printf \"%s\", pending; pending = \"\"; if (keep) print
          next
        }
        { if (keep) printf \"%s\", pending; pending = \"\" }
        /^\$/ { pending = \"\\n\"; next }
        { if (keep) print }
        END { if (keep) printf \"%s\", pending }" keep=1
    }
    cd /tmp
    for args in "" "-v"; do
      name=lsusb${args:+-v}
      lsusb $args >$name.plain 2>$name.plain.err || { echo "lsusb $args failed"; exit 1; }
      /lab/with-shim lsusb $args >$name.shim 2>$name.shim.err || { echo "lsusb $args with the shim failed"; cat $name.shim.err; exit 1; }
      drop_remote <$name.shim >$name.shim.local
      # lsusb -v of the remote root hub says it cannot open it (the agent refuses to open hubs,
      # as libusb refuses a user without privileges): that one line, and no other, is extra.
      cp $name.shim.err $name.shim.err.local
      if [ -n "$args" ]; then
        awk "!done && /^Couldn.t open device, some information will be missing\$/ { done = 1; next } { print }" \
          <$name.shim.err >$name.shim.err.local
        cmp -s $name.shim.err $name.shim.err.local && { echo "lsusb -v opened the remote hub"; exit 1; }
      fi
      if ! cmp $name.plain $name.shim.local || ! cmp $name.plain.err $name.shim.err.local; then
        diff -u $name.plain $name.shim.local; diff -u $name.plain.err $name.shim.err.local
        echo "lsusb $args of the local devices differs with the shim"; exit 1
      fi
      echo "lsusb${args:+ $args}: the local devices, $(wc -c <$name.plain) bytes, $(grep -c "^Bus" $name.plain) devices: byte for byte the same with the shim"
    done
    remote=$(grep "^Bus 2[0-9][0-9] " lsusb.shim)
    echo "$remote" | sed "s/^/  remote: /"
    for id in 1209:0001 1209:0002; do
      echo "$remote" | grep -q " ID $id " || { echo "the remote device $id is missing"; exit 1; }
      grep -q "^Bus 2[0-9][0-9] Device [0-9]*: ID $id " lsusb-v.shim || { echo "lsusb -v lacks the remote device $id"; exit 1; }
    done
    # The two devices hang from the simulated root hub, on the same bus, listed with them.
    bus=$(echo "$remote" | sed -n "s/^Bus \\([0-9]*\\) Device 001: ID 1d6b:0002 .*/\\1/p")
    [ -n "$bus" ] || { echo "the simulated root hub is missing"; exit 1; }
    [ "$(grep -c "^Bus $bus " lsusb.shim)" -eq 3 ] || { echo "not the root hub and its two devices on bus $bus"; exit 1; }
    [ "$(grep -c "^Bus 2[0-9][0-9] " lsusb.shim)" -eq 3 ] || { echo "more remote devices than the simulated agent has"; exit 1; }' ||
    die "lsusb in the guest with the shim"
}

# guest_wait_for_line FILE PATTERN SECONDS: until a line of the guest's FILE matches (grep -E).
guest_wait_for_line() {
  guest $(($3 + 10)) "for _ in \$(seq $(($3 * 10))); do grep -qE '$2' $1 && exit 0; sleep 0.1; done; exit 1" \
    >/dev/null
}

# mixed_events in the guest: the stick and the mouse local, the loopback device remote, in one
# context and one event loop (see the program); at its end, QEMU unplugs the MTP device (local)
# and plugs it in again while the loopback device re-enumerates (remote). The check is the lab's
# first, right after the boot, and runs the program MIXED_EVENTS_RUNS times in a row: its own
# poll() loop once stalled there, and only there (the stick's completions went unhandled for as
# long as the loopback device's kept coming, which depends on timing), and its first run is the
# simulated agent's first client.
MIXED_EVENTS_RUNS=3
check_mixed_events() {
  ensure_sim_agent
  local run
  for run in $(seq $MIXED_EVENTS_RUNS); do
    echo "-- run $run of $MIXED_EVENTS_RUNS"
    run_mixed_events
  done
}

run_mixed_events() {
  local out=/tmp/mixed_events.out
  guest 10 "rm -f $out; (/lab/with-shim /lab/bin/mixed_events $STORAGE_ID $HID_ID $LOOPBACK_ID $MTP_ID 90 \
    >$out 2>&1; echo \"exit status \$?\" >>$out) </dev/null >/dev/null 2>&1 &" ||
    die "could not start mixed_events in the guest"
  if guest_wait_for_line $out "^waiting for $MTP_ID" 100; then
    qmp '{"execute": "device_del", "arguments": {"id": "mtp"}}' >/dev/null || die "QEMU did not unplug the MTP device"
    guest_wait_for_line $out "^hotplug: $MTP_ID left" 20 || true
    qmp "{\"execute\": \"device_add\", \"arguments\": $(mtp_device_json)}" >/dev/null ||
      die "QEMU did not plug the MTP device in again"
  fi
  guest_wait_for_line $out '^exit status' 100 || true
  local output
  output=$(guest 10 "cat $out") || die "could not read mixed_events' output"
  echo "$output"
  grep -q '^exit status 0$' <<<"$output" || die "mixed_events in the guest failed"
  local bus what
  for what in storage mouse loopback; do
    bus=$(sed -n "s/^$what [0-9a-f:]* on bus \([0-9]*\).*/\1/p" <<<"$output")
    [ -n "$bus" ] || die "mixed_events did not say where the $what is"
    if [ "$what" = loopback ]; then
      ((bus >= 201)) || die "the loopback device was not the remote one (bus $bus)"
    else
      ((bus < 201)) || die "the $what was not a local device (bus $bus)"
    fi
  done
  echo "the stick, the mouse and the MTP device were local, the loopback device remote"
  local driver
  driver=$(storage_driver) || die "could not read the guest's sysfs"
  [ "$driver" = usb-storage ] || die "usb-storage was not attached to the stick again ($driver)"
}

# ---- the agent killed: errors on the host, never a hang --------------------------------------

check_agent_killed() {
  local out=$LAB_DIR/agent-killed.out
  # Reads until something fails: a million MiB would take hours.
  shim_background "$out" "$PROGRAMS/msc_read" $STORAGE_ID 1000000
  wait_for_line "$out" '^reading' 30 || { cat "$out"; die "msc_read did not start reading"; }
  sleep 1
  guest 30 'kill -9 $(cat /tmp/agent.pid)' || die "could not kill the agent in the guest"
  echo "guest: kill -9 usbnet-agent"
  local status=0 start=$SECONDS
  wait_for_exit "$BG_PID" 30 || status=$?
  cat "$out"
  ((status != 124)) || die "msc_read still hangs 30 s after the agent died"
  ((status == 1)) || die "msc_read ended with status $status, not its error status 1"
  grep -q "LIBUSB_ERROR_NO_DEVICE" "$out" || die "msc_read's error is not LIBUSB_ERROR_NO_DEVICE"
  echo "msc_read ended with NO_DEVICE $((SECONDS - start)) s after the agent died"

  # The lab goes on: a new agent, and the stick works through it (after a reset recovery).
  guest 30 /lab/start-agent || die "the agent did not start again"
  shim "$PROGRAMS/msc_check" $STORAGE_ID 200 8 || die "the stick does not work through the new agent"
}

run_check() {
  local name=$1
  case " ${LAB_CHECKS[*]} " in *" $name "*) ;; *) die "no check '$name' (lab checks lists them)" ;; esac
  require_build
  load_ports
  qemu_pid >/dev/null || die "the guest is not running (it did not boot, or it stopped)"
  trap stop_background EXIT
  "check_$name"
}

# Every check in order against one guest: one line per check, then a summary.
run_all_checks() {
  local name passed=0 failed=0 failures=()
  for name in "${LAB_CHECKS[@]}"; do
    say "check: $name"
    if (run_check "$name"); then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      failures+=("$name")
    fi
  done
  echo "lab: $passed passed, $failed failed${failures[*]:+ (${failures[*]})}"
  ((failed == 0))
}
