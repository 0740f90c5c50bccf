# shellcheck shell=bash
# The lab's benchmark: mass-storage read throughput of the same emulated stick, in one boot,
#  (a) by msc_read inside the guest, on the device itself,
#  (b) by msc_read on the host, through libusbnet.so and the agent in the guest,
#  (c) by msc_read inside the guest, on the stick exported by Linux USB/IP (usbip-host) and
#      attached back over the guest's 127.0.0.1 (vhci-hcd),
# plus the raw TCP throughput from the guest to the host through QEMU's user-mode network, the
# path (b) takes. (a) and (b) alternate for several rounds, then (c) (binding the stick to
# usbip-host takes it from everyone else); each column's median is compared.

BENCH_MIB=${USBNET_LAB_BENCH_MIB:-32}
BENCH_ROUNDS=${USBNET_LAB_BENCH_ROUNDS:-3}
BENCH_CHUNK_KIB=${USBNET_LAB_BENCH_CHUNK_KIB:-128}

# Reads the MB/s figure out of msc_read's output.
mb_per_s() {
  sed -n 's/^read .* MiB in .* s: \([0-9.]*\) MB\/s$/\1/p' | tail -1
}

median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

bench_local() {
  local out
  out=$(guest 300 "/lab/bin/msc_read $STORAGE_ID $BENCH_MIB $BENCH_CHUNK_KIB ${1:-} 2>&1") ||
    die "msc_read in the guest failed: $out"
  mb_per_s <<<"$out"
}

bench_usbnet() {
  local out
  out=$(LD_PRELOAD=$PRELOAD USBNET_AGENT=127.0.0.1:$AGENT_PORT timeout 300 \
    "$PROGRAMS/msc_read" $STORAGE_ID "$BENCH_MIB" "$BENCH_CHUNK_KIB" 2>&1) ||
    die "msc_read through usbnet failed: $out"
  mb_per_s <<<"$out"
}

# BENCH_MIB MiB from the guest's port 5556 to the host, through QEMU's user-mode network.
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

# Exports the stick with USB/IP inside the guest and attaches it back; echoes the bus number
# of the attached copy.
usbip_attach() {
  local out
  out=$(guest 120 "set -e
    while read -r m; do insmod /lib/modules/\$m; done </lab/modules-usbip
    busid=
    for d in /sys/bus/usb/devices/[0-9]*-*; do
      case \$d in *:*) continue ;; esac
      [ \"\$(cat \$d/idVendor):\$(cat \$d/idProduct)\" = $STORAGE_ID ] && busid=\${d##*/}
    done
    [ -n \"\$busid\" ] || { echo 'no stick to export'; exit 1; }
    usbipd -D
    sleep 0.5
    usbip bind -b \$busid
    usbip attach -r 127.0.0.1 -b \$busid
    for _ in \$(seq 100); do
      for d in /sys/bus/usb/devices/[0-9]*-*; do
        case \$d in *:*) continue ;; esac
        [ \"\$(cat \$d/idVendor):\$(cat \$d/idProduct)\" = $STORAGE_ID ] || continue
        [ \"\${d##*/}\" = \"\$busid\" ] && continue
        echo \"vhci-bus \$(cat \$d/busnum)\"
        exit 0
      done
      sleep 0.1
    done
    echo 'the attached stick did not appear'
    exit 1" 2>&1) || die "USB/IP in the guest failed: $out"
  sed -n 's/^vhci-bus //p' <<<"$out"
}

run_bench() {
  load_ports
  say "mass-storage READ(10), ${BENCH_CHUNK_KIB} KiB per command, $BENCH_MIB MiB per run, $BENCH_ROUNDS rounds"
  local a=() b=() c=() raw=() round
  for round in $(seq "$BENCH_ROUNDS"); do
    a+=("$(bench_local)")
    b+=("$(bench_usbnet)")
    raw+=("$(bench_raw_tcp)")
    echo "round $round: in the guest ${a[-1]} MB/s, through usbnet ${b[-1]} MB/s, raw TCP ${raw[-1]} MB/s"
  done
  local bus
  bus=$(usbip_attach)
  [ -n "$bus" ] || die "USB/IP attached no stick"
  for round in $(seq "$BENCH_ROUNDS"); do
    c+=("$(bench_local "$bus")")
    echo "round $round: through USB/IP ${c[-1]} MB/s"
  done

  local ma mb mc mraw
  ma=$(median "${a[@]}")
  mb=$(median "${b[@]}")
  mc=$(median "${c[@]}")
  mraw=$(median "${raw[@]}")
  cat <<TABLE

| mass-storage read, ${BENCH_CHUNK_KIB} KiB READ(10)s (median of $BENCH_ROUNDS) | MB/s |
| --- | --- |
| (a) plain libusb program in the guest | $ma |
| (b) on the host through libusbnet.so and the agent | $mb |
| (c) in the guest through Linux USB/IP over 127.0.0.1 | $mc |
| raw TCP, guest to host, through QEMU's user-mode network | $mraw |

(b)/(a) = $(ratio "$mb" "$ma")   (b)/(c) = $(ratio "$mb" "$mc")   (b)/raw TCP = $(ratio "$mb" "$mraw")
TABLE
}
