# shellcheck shell=bash
# Shared by the lab's scripts: messages, failure, packages, and where things live.
# Sourced by tests/lab/lab, which sets LAB_SRC (tests/lab) and BUILD_DIR first.

say() { printf '\033[1mlab: %s\033[0m\n' "$*" >&2; }
die() {
  printf 'lab: FAILED: %s\n' "$*" >&2
  exit 1
}

# Downloads and what is made from them survive the build directory (a fresh clone reuses
# them); what depends on the build (the guest's root with the agent) lives in the build.
LAB_CACHE=${USBNET_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/usbnet-lab}
LAB_DIR=$BUILD_DIR/lab
RUN_DIR=$LAB_DIR/run

# Host packages the lab needs: QEMU, busybox for the guest, and the programs copied into it.
LAB_PACKAGES=(qemu-system-x86 busybox-static usbip usbutils binutils iproute2
  mtp-tools pcscd libccid pcsc-tools python3-pyscard)  # the mtp and pcscd checks, on the host
# The benchmark's profile (USBNET_LAB_PROFILE=1 ./run lab bench): perf and strace in the guest.
if [ "${USBNET_LAB_PROFILE:-0}" = 1 ]; then LAB_PACKAGES+=(linux-perf strace); fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

lab_install_missing() {
  local missing=() p
  for p in "${LAB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  as_root apt-get update -qq || die "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" || die "could not install ${missing[*]}"
}

# The shim and the programs, as the build made them. USBNET_LAB_PRELOAD, when set, is what
# LD_PRELOAD gets instead of the shim alone (CTest sets it: sanitizer runtimes first).
SHIM=$BUILD_DIR/src/interpose/libusbnet.so
PRELOAD=${USBNET_LAB_PRELOAD:-$SHIM}
AGENT=$BUILD_DIR/src/agent/usbnet-agent
PROGRAMS=$BUILD_DIR/tests/lab
USBNET_CLI=$BUILD_DIR/src/cli/usbnet
# The host's shim is a client of its own, paired with the guest's agent at each boot (a key in
# the build's lab directory, not the user's ~/.config/usbnet): the checks run over TLS.
export USBNET_CONFIG_DIR=$LAB_DIR/client
# The guest's CPU is emulated: its side of a TLS handshake (and an agent busy enumerating after a
# hotplug) can take the shim's default 3 s to connect when the host is loaded; a slow board's.
export USBNET_CONNECT_TIMEOUT_MS=${USBNET_CONNECT_TIMEOUT_MS:-15000}
LAB_PROGRAM_NAMES=(msc_check msc_read hid_reports hid_latency ccid_check unplug_watch mixed_events
  tcp_source run_timed)

require_build() {
  local f
  # (The lsusb check also runs the end-to-end tests' topology program on the host.)
  for f in "$SHIM" "$AGENT" "${LAB_PROGRAM_NAMES[@]/#/$PROGRAMS/}" "$BUILD_DIR/tests/e2e/topology" \
    "$BUILD_DIR/src/cli/usbnet"; do
    [ -x "$f" ] || [ -f "$f" ] || die "$f is missing: build first (./run build)"
  done
}
