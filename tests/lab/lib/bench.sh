# shellcheck shell=bash
# The lab's benchmark, like for like: the same emulated devices, the same programs, the same
# link (the guest's own 127.0.0.1) for
#   usbnet   usbnet-agent and the program with libusbnet.so, both in the guest, and
#   USB/IP   Linux's usbip-host exporting the device and vhci-hcd attaching it back, both in
#            the guest (the program uses the attached copy through the kernel),
# beside the program on the device itself ("local", no link at all). Rows: READ(10)s of the
# stick with msc_read, 128 KiB and 1 MiB, synchronous and with each command's stages queued
# (--queued: the data in several transfers, all in flight with the CBW); the mouse's
# report latency (hid_latency: QEMU injects the event through QMP, the program times it); and
# lsusb -v of the stick. CPU seconds per GiB for the READ(10)s: the program (getrusage) plus the
# agent's threads (usbnet) or USB/IP's kernel threads (stub_rx/tx, vhci_rx/tx) from
# /proc/PID/task/*/schedstat, and the whole guest's busy time from /proc/stat.
#
# Then the same rows with a delay on the guest's loopback (netem: half the round trip on each
# packet, both directions cross lo), for latency-bound links: 0, 1 and 10 ms round trip.
# Each round measures usbnet, then attaches the devices with USB/IP, measures that, and
# detaches them again, so that both see the same machine; medians of the rounds are compared.
# The guest's CPU is emulated (TCG): every instruction and context switch per URB is magnified,
# as on the small boards agents often run on.
#
# For the record, at 0 ms: msc_read on the host through QEMU's user-mode network (the path the
# lab's checks take) and raw TCP over that network.
#
# USBNET_LAB_BENCH_DELAYS    round trips in ms (default "0 1 10")
# USBNET_LAB_BENCH_ROUNDS    rounds per delay (default 3)
# USBNET_LAB_BENCH_MIB       MiB per READ(10) run at 0 ms (default 32; less on delayed links)
# USBNET_LAB_BENCH_SAMPLES   HID latency samples per run (default 100)

BENCH_DELAYS=${USBNET_LAB_BENCH_DELAYS:-0 1 10}
BENCH_ROUNDS=${USBNET_LAB_BENCH_ROUNDS:-3}
BENCH_MIB=${USBNET_LAB_BENCH_MIB:-32}
BENCH_SAMPLES=${USBNET_LAB_BENCH_SAMPLES:-100}
BENCH_STORAGE_ID=46f4:0001
BENCH_MOUSE_PRODUCT="QEMU USB Mouse"
# The READ(10) rows: name, chunk KiB, pieces (0: synchronous).
BENCH_MSC_ROWS=("128 KiB, synchronous|128|0" "1 MiB, synchronous|1024|0"
  "128 KiB, stages queued (4 pieces)|128|4" "1 MiB, stages queued (8 pieces)|1024|8")

median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0 || a == "" || b == "") print "-"; else printf "%.2f", a / b}'; }

# MiB per READ(10) run for a round trip (ms): fewer on slow links, so that a run stays near a
# second or two.
bench_mib() {
  awk -v rtt="$1" -v mib="$BENCH_MIB" 'BEGIN {m = rtt >= 10 ? mib / 8 : rtt >= 1 ? mib / 2 : mib; if (m < 4) m = 4; printf "%d", m}'
}

# Results, in associative arrays keyed "DELAY|ROW|PATH", one value per round, space-separated.
declare -A BENCH_RESULTS
record() { BENCH_RESULTS["$1"]+="$2 "; }
results_of() { echo "${BENCH_RESULTS["$1"]:-}"; }

# bench_run KEY COMMAND...: runs bench-run in the guest and records each value of its result
# line under KEY|name.
bench_run() {
  local key=$1 out line pair
  shift
  out=$(guest 600 "/lab/bench-run $*") || die "bench-run $* failed in the guest: $out"
  line=$(grep '^result ' <<<"$out" | tail -1)
  [ -n "$line" ] || die "bench-run $* printed no result: $out"
  for pair in ${line#result }; do record "$key|${pair%%=*}" "${pair#*=}"; done
}

# ---- netem on the guest's loopback -----------------------------------------------------------

NETEM_LOADED=0
set_delay() {
  local rtt=$1
  if ((NETEM_LOADED == 0)); then
    guest 60 'while read -r m; do insmod /lib/modules/$m; done </lab/modules-netem' >/dev/null ||
      die "could not load sch_netem in the guest"
    NETEM_LOADED=1
  fi
  if [ "$rtt" = 0 ]; then
    guest 30 '/usr/sbin/tc qdisc del dev lo root 2>/dev/null; true' >/dev/null
  else
    local half_us
    half_us=$(awk -v r="$rtt" 'BEGIN {printf "%d", r * 500}')
    guest 30 "/usr/sbin/tc qdisc replace dev lo root netem delay ${half_us}us limit 100000" ||
      die "tc could not delay the guest's loopback"
  fi
  # What it does: a ping over lo (its round trip crosses lo twice).
  guest 30 "ping -c 3 -q 127.0.0.1 | tail -1" | sed 's/^/lab: loopback ping: /' >&2 || true
}

# ---- USB/IP in the guest ---------------------------------------------------------------------

# Exports the stick and the mouse with usbip-host and attaches both back over 127.0.0.1
# (vhci-hcd); sets USBIP_STICK_BUS and USBIP_MOUSE_BUS, the buses of the attached copies.
USBIP_LOADED=0
usbip_attach() {
  local out
  out=$(guest 180 "set -e
    if [ $USBIP_LOADED = 0 ]; then
      while read -r m; do insmod /lib/modules/\$m; done </lab/modules-usbip
      usbipd -D
      sleep 0.5
    fi
    # The stick and the mouse on the guest's own xHCI (vhci-hcd's copies have other buses).
    local_device() {
      for d in /sys/bus/usb/devices/[0-9]*-*; do
        case \$d in *:*) continue ;; esac
        case \$(readlink -f \$d) in *vhci*) continue ;; esac
        [ \"\$(cat \$d/idVendor):\$(cat \$d/idProduct)\" = \$1 ] || continue
        [ -z \"\$2\" ] || [ \"\$(cat \$d/product)\" = \"\$2\" ] || continue
        echo \${d##*/}
        return 0
      done
      return 1
    }
    attached_bus() {
      for d in /sys/bus/usb/devices/[0-9]*-*; do
        case \$d in *:*) continue ;; esac
        case \$(readlink -f \$d) in *vhci*) ;; *) continue ;; esac
        [ \"\$(cat \$d/idVendor):\$(cat \$d/idProduct)\" = \$1 ] || continue
        [ -z \"\$2\" ] || [ \"\$(cat \$d/product)\" = \"\$2\" ] || continue
        cat \$d/busnum
        return 0
      done
      return 1
    }
    stick=\$(local_device $BENCH_STORAGE_ID '') || { echo 'no stick to export'; exit 1; }
    mouse=\$(local_device 0627:0001 '$BENCH_MOUSE_PRODUCT') || { echo 'no mouse to export'; exit 1; }
    echo \"\$stick \$mouse\" >/tmp/usbip-exported
    # usbip attach reads every vhci port's device from sysfs first: while the device attached
    # just before is still enumerating, that fails ('open vhci_driver') and attaches nothing,
    # so it is tried again.
    attach() {
      for _ in \$(seq 40); do
        usbip attach -r 127.0.0.1 -b \$1 2>/tmp/usbip-attach.err && return 0
        sleep 0.25
      done
      cat /tmp/usbip-attach.err
      return 1
    }
    for busid in \$stick \$mouse; do
      usbip bind -b \$busid
      attach \$busid
    done
    for _ in \$(seq 200); do
      if s=\$(attached_bus $BENCH_STORAGE_ID '') && m=\$(attached_bus 0627:0001 '$BENCH_MOUSE_PRODUCT'); then
        udevadm settle --timeout=30
        echo \"vhci-buses \$s \$m\"
        exit 0
      fi
      sleep 0.1
    done
    echo 'the attached devices did not appear'
    exit 1" 2>&1) || die "USB/IP in the guest failed: $out"
  USBIP_LOADED=1
  read -r USBIP_STICK_BUS USBIP_MOUSE_BUS < <(sed -n 's/^vhci-buses //p' <<<"$out")
  [ -n "$USBIP_STICK_BUS" ] && [ -n "$USBIP_MOUSE_BUS" ] || die "USB/IP attached nothing: $out"
}

# Detaches what usbip_attach attached and gives the devices back to their drivers (and so to
# the agent).
usbip_detach() {
  local out
  out=$(guest 180 "set -e
    for port in \$(usbip port 2>/dev/null | sed -n 's/^Port \\([0-9]*\\): <Port in Use>.*/\\1/p'); do
      usbip detach -p \$port
    done
    for busid in \$(cat /tmp/usbip-exported); do usbip unbind -b \$busid; done
    udevadm settle --timeout=30
    # The stick's kernel driver is back once its SCSI disk is (the next program detaches it).
    for _ in \$(seq 100); do
      ls /sys/bus/usb/drivers/usb-storage/ | grep -q : && exit 0
      sleep 0.1
    done
    echo 'usb-storage did not take the stick back'
    exit 1" 2>&1) || die "USB/IP detach in the guest failed: $out"
}

# ---- one round --------------------------------------------------------------------------------

# bench_path DELAY PATH: every row on one path.
bench_path() {
  local rtt=$1 path=$2 mib row name chunk pieces hid_path=$2
  mib=$(bench_mib "$rtt")
  [[ $path == usbip:* ]] && hid_path=usbip:$USBIP_MOUSE_BUS
  for row in "${BENCH_MSC_ROWS[@]}"; do
    IFS='|' read -r name chunk pieces <<<"$row"
    bench_run "$rtt|msc $name|${path%%:*}" msc "$path" "$mib" "$chunk" "$pieces"
  done
  bench_run "$rtt|hid|${path%%:*}" hid "$hid_path" "$BENCH_SAMPLES" "10.0.2.2:$QMP_PORT"
  bench_run "$rtt|lsusb|${path%%:*}" lsusb "$path"
}

# The host through QEMU's user-mode network, and raw TCP over it (the lab's checks' path).
bench_host_usbnet() {
  local out
  out=$(LD_PRELOAD=$PRELOAD USBNET_AGENT=127.0.0.1:$AGENT_PORT USBNET_DEVICES=$BENCH_STORAGE_ID \
    timeout 300 "$PROGRAMS/msc_read" $BENCH_STORAGE_ID "$BENCH_MIB" 128 2>&1) ||
    die "msc_read through usbnet failed: $out"
  sed -n 's/^read .* MiB in .* s: \([0-9.]*\) MB\/s$/\1/p' <<<"$out" | tail -1
}

bench_raw_tcp() {
  guest 30 "/lab/bin/tcp_source 5556 $BENCH_MIB >/tmp/tcp_source.log 2>&1 &" ||
    die "could not start the guest's TCP sender"
  local start end bytes
  for _ in $(seq 50); do
    start=$(date +%s.%N)
    bytes=$(timeout 120 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && wc -c <&3' "$RAW_PORT" 2>/dev/null) || bytes=0
    end=$(date +%s.%N)
    [ "$bytes" -gt 0 ] && break
    sleep 0.1
  done
  [ "$bytes" -eq $((BENCH_MIB << 20)) ] || die "raw TCP: got $bytes bytes, not $((BENCH_MIB << 20))"
  awk -v b="$bytes" -v s="$start" -v e="$end" 'BEGIN {printf "%.1f", b / (e - s) / 1e6}'
}

# ---- the tables -------------------------------------------------------------------------------

# cell KEY: the median of the rounds' values, or "-".
cell() {
  local values
  values=$(results_of "$1")
  if [ -z "$values" ]; then echo "-"; else median $values; fi
}

# CPU seconds per GiB of one path's READ(10)s: (SUM of the KEYS' medians) / bytes * 2^30.
cpu_per_gib() {
  local base=$1 bytes total=0 k
  shift
  bytes=$(cell "$base|bytes")
  [ "$bytes" = - ] && { echo "-"; return; }
  for k in "$@"; do total=$(awk -v t="$total" -v v="$(cell "$base|$k")" 'BEGIN {print t + v}'); done
  awk -v t="$total" -v b="$bytes" 'BEGIN {printf "%.2f", t / b * 1073741824}'
}

print_tables() {
  local rtt row name
  for rtt in $BENCH_DELAYS; do
    cat <<HEAD

| ${rtt} ms round trip (median of $BENCH_ROUNDS) | local in the guest | usbnet | USB/IP | usbnet / USB/IP |
| --- | --- | --- | --- | --- |
HEAD
    for row in "${BENCH_MSC_ROWS[@]}"; do
      name=${row%%|*}
      local l u i
      l=$(cell "$rtt|msc $name|local|mbps")
      u=$(cell "$rtt|msc $name|usbnet|mbps")
      i=$(cell "$rtt|msc $name|usbip|mbps")
      echo "| READ(10) $name, MB/s (higher: better) | $l | $u | $i | $(ratio "$u" "$i") |"
    done
    local key label
    for key in median p99; do
      label="HID report latency, $key, us (lower: better)"
      l=$(cell "$rtt|hid|local|$key")
      u=$(cell "$rtt|hid|usbnet|$key")
      i=$(cell "$rtt|hid|usbip|$key")
      echo "| $label | $l | $u | $i | $(ratio "$u" "$i") |"
    done
    l=$(cell "$rtt|lsusb|local|us")
    u=$(cell "$rtt|lsusb|usbnet|us")
    i=$(cell "$rtt|lsusb|usbip|us")
    echo "| lsusb -v of the stick, ms (lower: better) | $(ratio "$l" 1000) | $(ratio "$u" 1000) | $(ratio "$i" 1000) | $(ratio "$u" "$i") |"
    echo "(HID latency includes QEMU's monitor round trip, median $(cell "$rtt|hid|usbnet|monitor") us on the usbnet runs, $(cell "$rtt|hid|usbip|monitor") us on USB/IP's.)"
  done

  cat <<HEAD

| CPU seconds per GiB read (median of $BENCH_ROUNDS) | usbnet: program + agent | USB/IP: program + kernel threads | ratio | guest busy, usbnet | guest busy, USB/IP | ratio |
| --- | --- | --- | --- | --- | --- | --- |
HEAD
  for rtt in $BENCH_DELAYS; do
    for row in "${BENCH_MSC_ROWS[@]}"; do
      name=${row%%|*}
      local up ip ub ib
      up=$(cpu_per_gib "$rtt|msc $name|usbnet" prog side)
      ip=$(cpu_per_gib "$rtt|msc $name|usbip" prog side)
      ub=$(cpu_per_gib "$rtt|msc $name|usbnet" busy)
      ib=$(cpu_per_gib "$rtt|msc $name|usbip" busy)
      echo "| READ(10) $name, $rtt ms | $up | $ip | $(ratio "$up" "$ip") | $ub | $ib | $(ratio "$ub" "$ib") |"
    done
  done
  echo "(lower: better; the program's own time and the guest's busy time are the reading phase's;"
  echo " the guest's busy time includes interrupts and softirqs, which no process is charged.)"
}

run_bench() {
  load_ports
  local rtt round host=() raw=()
  say "like-for-like: usbnet and USB/IP inside the guest over 127.0.0.1; delays: $BENCH_DELAYS ms round trip; $BENCH_ROUNDS rounds"
  # USB/IP has no encryption: for like for like, the agent also serves the guest's program in
  # plaintext (--insecure; the host's paired shim still speaks TLS to it).
  guest 30 'kill $(cat /tmp/agent.pid); sleep 0.5; /lab/start-agent --insecure' >/dev/null ||
    die "could not restart the guest's agent with --insecure"
  for rtt in $BENCH_DELAYS; do
    set_delay "$rtt"
    for round in $(seq "$BENCH_ROUNDS"); do
      say "$rtt ms, round $round: local and usbnet"
      # The local rows need no link: measured once, at the first delay.
      [ "$rtt" = "${BENCH_DELAYS%% *}" ] && bench_path "$rtt" local
      bench_path "$rtt" usbnet
      if [ "$rtt" = 0 ]; then
        host+=("$(bench_host_usbnet)")
        raw+=("$(bench_raw_tcp)")
      fi
      say "$rtt ms, round $round: USB/IP"
      usbip_attach
      bench_path "$rtt" "usbip:$USBIP_STICK_BUS"
      usbip_detach
    done
  done
  set_delay 0
  # The local rows belong to every delay's table.
  local first=${BENCH_DELAYS%% *} key
  for rtt in $BENCH_DELAYS; do
    [ "$rtt" = "$first" ] && continue
    for key in "${!BENCH_RESULTS[@]}"; do
      [[ $key == "$first|"*"|local|"* ]] && BENCH_RESULTS["$rtt|${key#"$first|"}"]=${BENCH_RESULTS[$key]}
    done
  done
  print_tables
  if ((${#host[@]} > 0)); then
    cat <<TABLE

For the record, the lab's checks' path: msc_read on the host through QEMU's user-mode network,
over TLS, 128 KiB READ(10)s: $(median "${host[@]}") MB/s; raw TCP from the guest to the host over that
network: $(median "${raw[@]}") MB/s (medians of $BENCH_ROUNDS).
TABLE
  fi
}
