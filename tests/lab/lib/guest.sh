# shellcheck shell=bash
# The guest: boot, stop, a command inside it, and QEMU's monitor (QMP).
#
# QEMU runs daemonized (so a CTest fixture can boot it in one test and use it in the next), its
# pid and the ports in $RUN_DIR. Four ports of the host's 127.0.0.1, picked free at boot: the
# agent inside the guest, the guest's command channel, a plain TCP port for the benchmark's raw
# figure (these three forwarded to the guest), and QMP.
# Every way out stops it: `lab stop`, the end of `lab test`/`lab bench` (trap), the guest's own
# lifetime limit (it powers off), and a kernel panic (-no-reboot).

GUEST_LIFETIME=${USBNET_LAB_LIFETIME:-900}  # seconds; the guest powers itself off after that
BOOT_TIMEOUT=${USBNET_LAB_BOOT_TIMEOUT:-240}
MTP_DIR=$LAB_DIR/mtp

load_ports() {
  [ -f "$RUN_DIR/ports" ] || die "no guest is running (no $RUN_DIR/ports): run 'lab boot' first"
  # shellcheck disable=SC1091
  . "$RUN_DIR/ports"
}

qemu_pid() {
  [ -f "$RUN_DIR/qemu.pid" ] || return 1
  local pid
  pid=$(cat "$RUN_DIR/qemu.pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = qemu-system-x86 ] || return 1
  echo "$pid"
}

free_port() {
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "found no free port on 127.0.0.1"
}

# The devices, on one xHCI controller with 8 USB 2 and 8 USB 3 ports (no hub in between).
usb_device_args() {
  echo "-device qemu-xhci,id=xhci,p2=8,p3=8"
  echo "-drive if=none,id=stick,format=raw,file=$LAB_DIR/disk.img"
  echo "-device usb-storage,bus=xhci.0,drive=stick,id=storage,serial=usbnet-lab"
  echo "-device usb-mouse,bus=xhci.0,id=mouse"
  echo "-device usb-kbd,bus=xhci.0,id=kbd"
  echo "-device $(mtp_device)"
  echo "-device usb-ccid,bus=xhci.0,id=ccid"
  echo "-audiodev none,id=a0"
  echo "-device usb-audio,bus=xhci.0,audiodev=a0,id=audio"
}
# The MTP device, on QEMU's command line and as QMP's device_add wants it (to plug it in again).
mtp_device() { echo "usb-mtp,bus=xhci.0,id=mtp,rootdir=$MTP_DIR,readonly=on,desc=usbnet-lab"; }
mtp_device_json() {
  printf '{"driver": "usb-mtp", "bus": "xhci.0", "id": "mtp", "rootdir": "%s", "readonly": true, "desc": "usbnet-lab"}' "$MTP_DIR"
}

# USBNET_LAB_ICOUNT (e.g. shift=5,sleep=off): QEMU counts the guest's instructions and its clock
# follows the count, not the host's time, so that a benchmark measures what the guest executes
# whatever else the host runs meanwhile (a shared machine). Off by default.
icount_args() {
  [ -z "${USBNET_LAB_ICOUNT:-}" ] || echo "-icount $USBNET_LAB_ICOUNT"
}

stop_guest() {
  local pid
  if pid=$(qemu_pid); then
    say "stopping the guest (qemu pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/qemu.pid" "$RUN_DIR/ports"
}

boot_guest() {
  stop_guest
  prepare_image
  mkdir -p "$RUN_DIR" "$MTP_DIR"
  rm -f "$LAB_DIR/disk.img"
  truncate -s 64M "$LAB_DIR/disk.img"
  printf 'usbnet lab: a file served by the emulated MTP device\n' >"$MTP_DIR/readme.txt"
  head -c 300000 /dev/urandom >"$MTP_DIR/random.bin"  # many bulk packets (the mtp check)

  local agent_port ctl_port raw_port qmp_port
  for _ in 1 2 3; do
    agent_port=$(free_port)
    ctl_port=$(free_port)
    raw_port=$(free_port)
    qmp_port=$(free_port)
    : >"$RUN_DIR/console.log"
    # shellcheck disable=SC2046
    if qemu-system-x86_64 -machine q35,i8042=off -accel tcg -m 1024 -smp 1 $(icount_args) \
      -nodefaults -no-user-config -display none -no-reboot \
      -kernel "$KERNEL_IMAGE" -initrd "$LAB_DIR/initramfs.cpio" \
      -append "console=ttyS0 panic=-1 quiet lab.lifetime=$GUEST_LIFETIME" \
      -serial "file:$RUN_DIR/console.log" \
      -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$agent_port-:3241,hostfwd=tcp:127.0.0.1:$ctl_port-:5555,hostfwd=tcp:127.0.0.1:$raw_port-:5556" \
      -device e1000,netdev=net0,romfile= \
      -qmp "tcp:127.0.0.1:$qmp_port,server=on,wait=off" \
      $(usb_device_args) \
      -daemonize -pidfile "$RUN_DIR/qemu.pid" >"$RUN_DIR/qemu.log" 2>&1; then
      break
    fi
    grep -q "host forwarding\|Address already in use" "$RUN_DIR/qemu.log" && continue
    die "QEMU did not start: $(cat "$RUN_DIR/qemu.log")"
  done
  qemu_pid >/dev/null || die "QEMU did not start: $(cat "$RUN_DIR/qemu.log")"
  printf 'AGENT_PORT=%s\nCTL_PORT=%s\nRAW_PORT=%s\nQMP_PORT=%s\n' "$agent_port" "$ctl_port" \
    "$raw_port" "$qmp_port" >"$RUN_DIR/ports"
  load_ports

  say "booting Debian's kernel $KERNEL_VERSION under TCG (agent on 127.0.0.1:$AGENT_PORT)"
  local start=$SECONDS
  until grep -q "LAB-READY" "$RUN_DIR/console.log"; do
    if ! qemu_pid >/dev/null; then
      die "the guest stopped while booting: $(tail -30 "$RUN_DIR/console.log")"
    fi
    if ((SECONDS - start > BOOT_TIMEOUT)); then
      stop_guest
      die "the guest was not ready after ${BOOT_TIMEOUT}s: $(tail -30 "$RUN_DIR/console.log")"
    fi
    sleep 0.5
  done
  if grep -q "LAB-FAIL" "$RUN_DIR/console.log"; then
    local why
    why=$(grep "LAB-FAIL" "$RUN_DIR/console.log")
    stop_guest
    die "the guest's init failed: $why"
  fi
  say "guest ready after $((SECONDS - start))s"
  pair_with_guest
}

# The host pairs with the guest's agent as a user would, with a one-time code: the agent's key
# is pinned in the host's known_agents (replacing the previous boot's) and the host's key lands
# in the agent's authorized_clients.
pair_with_guest() {
  local code out
  code=$(guest 30 '/lab/bin/usbnet-agent pair --valid 120' | sed -n 's/^Pairing code: //p')
  [ -n "$code" ] || die "usbnet-agent pair gave no code in the guest"
  out=$("$USBNET_CLI" pair "127.0.0.1:$AGENT_PORT" --code "$code" --yes --replace \
    --timeout "$USBNET_CONNECT_TIMEOUT_MS" 2>&1) ||
    die "usbnet pair with the guest's agent failed: $out"
  say "paired with the guest's agent ($(grep -o 'SHA256:[^ ]*' <<<"$out" | head -1))"
}

# guest SECONDS COMMAND: runs COMMAND (one line of sh) in the guest, prints its output, and
# returns its exit status; fails if the guest does not answer within SECONDS.
guest() {
  local limit=$1
  shift
  load_ports
  local out
  out=$(timeout "$limit" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf "%s\n" "$1" >&3 && cat <&3' \
    "$CTL_PORT" "$(printf '%s' "$*" | base64 -w0)" 2>&1) || true
  local status
  status=$(tail -1 <<<"$out" | sed -n 's/^LAB-EXIT \([0-9]*\)$/\1/p')
  if [ -z "$status" ]; then
    printf '%s\n' "$out"
    echo "lab: the guest did not finish '$*' within ${limit}s (or the command channel is lost)" >&2
    return 99
  fi
  sed '$d' <<<"$out"
  return "$status"
}

# qmp JSON: sends one QMP command, prints the reply; fails on an error reply or no reply.
qmp() {
  load_ports
  timeout 20 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
    send() { printf "%s\n" "$1" >&3; }
    reply() {
      local line
      while IFS= read -r line <&3; do
        case $line in
          *\"return\"*) echo "$line"; return 0 ;;
          *\"error\"*) echo "$line"; return 1 ;;
        esac
      done
      echo "QMP closed the connection"
      return 1
    }
    IFS= read -r greeting <&3
    send "{\"execute\": \"qmp_capabilities\"}"
    reply >/dev/null || exit 1
    send "$1"
    reply' "$QMP_PORT" "$1"
}
