# shellcheck shell=bash
# The guest's kernel and initramfs, from Debian packages.
#
# The kernel is Debian 12's linux-image-amd64, fetched with apt-get download and unpacked into
# the cache (never installed into the host's /boot). The initramfs is built anew for each boot
# (a few seconds) because it carries the agent just built: busybox, the kernel modules the lab
# loads with their dependencies, systemd-udevd from Debian's udev package (also unpacked, not
# installed: libusb's hotplug listens to udevd, as on any Debian machine), lsusb and the usbip
# tools, the agent, the shim (for programs in the guest) and the lab's programs, and every
# shared library they need, found by ldd.

# Modules the guest loads at boot, dependencies are added: xHCI, e1000 for the network,
# usb-storage and usbhid so that the devices have their usual kernel drivers (programs detach
# them through libusb, as on a desktop). USB/IP's, for the benchmark's third column, are loaded
# by the benchmark only (vhci-hcd adds 16 buses), and so is netem, the delays of its
# latency-bound rows (iproute2's tc sets it up on the guest's loopback).
GUEST_MODULES=(xhci-pci e1000 usb-storage usbhid hid-generic)
GUEST_USBIP_MODULES=(usbip-host vhci-hcd)
GUEST_NETEM_MODULES=(sch_netem)

# Echoes the name of the kernel package linux-image-amd64 stands for (linux-image-6.1.0-NN-amd64).
kernel_package() {
  local name
  name=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$name" ]; then
    as_root apt-get update -qq >&2 || die "apt-get update failed"
    name=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  [ -n "$name" ] || die "apt knows no linux-image-amd64: cannot get the guest's kernel"
  echo "$name"
}

# Downloads Debian packages into $LAB_CACHE/debs and unpacks them into $1.
unpack_packages() {
  local into=$1
  shift
  mkdir -p "$LAB_CACHE/debs" "$into.tmp"
  # As root, apt hands downloads to its _apt user, who may not enter the cache: no need.
  local download=(apt-get -q download)
  [ "$(id -u)" -ne 0 ] || download=(apt-get -q -o APT::Sandbox::User=root download)
  # Lists older than the mirror name versions it no longer has: update them once and retry.
  if ! (cd "$LAB_CACHE/debs" && "${download[@]}" "$@"); then
    as_root apt-get update -qq || die "apt-get update failed"
    (cd "$LAB_CACHE/debs" && "${download[@]}" "$@") || die "apt-get download $* failed"
  fi
  local p
  for p in "$@"; do
    local deb
    deb=$(ls -t "$LAB_CACHE/debs/${p}"_*.deb | head -1)
    dpkg -x "$deb" "$into.tmp" || die "dpkg -x $p failed"
    rm -f "$deb"  # what it holds is unpacked
  done
  rm -rf "$into"
  mv "$into.tmp" "$into"
}

# Sets KERNEL_DIR (vmlinuz, lib/modules/VERSION) and UDEV_DIR, fetching them once.
fetch_guest_packages() {
  local kpkg
  kpkg=$(kernel_package)
  KERNEL_DIR=$LAB_CACHE/$kpkg
  if [ ! -d "$KERNEL_DIR" ]; then
    say "fetching $kpkg (Debian's kernel for the guest)"
    unpack_packages "$KERNEL_DIR" "$kpkg"
  fi
  KERNEL_VERSION=$(basename "$(ls -d "$KERNEL_DIR"/lib/modules/*)")
  KERNEL_IMAGE=$KERNEL_DIR/boot/vmlinuz-$KERNEL_VERSION
  [ -f "$KERNEL_IMAGE" ] || die "no kernel image in $KERNEL_DIR"
  local udev_version
  udev_version=$(apt-cache policy udev | awk '/Candidate:/ {print $2}')
  [ -n "$udev_version" ] && [ "$udev_version" != "(none)" ] || die "apt knows no udev package"
  UDEV_DIR=$LAB_CACHE/udev-$udev_version
  if [ ! -d "$UDEV_DIR" ]; then
    say "fetching udev $udev_version (systemd-udevd for the guest)"
    unpack_packages "$UDEV_DIR" udev
  fi
}

# Copies an ELF program into the guest's root at $2 and the libraries it needs at their own
# paths (the guest's loader finds them where Debian puts them).
copy_program() {
  local from=$1 to=$2 lib
  mkdir -p "$(dirname "$ROOT$to")"
  if [ "${3:-}" = strip ]; then
    strip -o "$ROOT$to" "$from" || die "strip $from failed"
  else
    cp -L "$from" "$ROOT$to"
  fi
  local deps
  deps=$(ldd "$from" 2>&1) || true
  if grep -q "not found" <<<"$deps"; then
    die "libraries of $from are missing on this host: $(grep "not found" <<<"$deps" | tr -s ' \t' ' ')"
  fi
  for lib in $(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$deps"); do
    [ -e "$ROOT$lib" ] && continue
    mkdir -p "$(dirname "$ROOT$lib")"
    cp -L "$lib" "$ROOT$lib"
  done
}

# The module file for a name (dashes and underscores are the same to the kernel).
module_file() {
  local name=${1//-/_} f
  for f in "${MODULE_FILES[@]}"; do
    local base=${f##*/}
    base=${base%.ko*}
    [ "${base//-/_}" = "$name" ] && { echo "$f"; return 0; }
  done
  return 1
}

# Appends a module, after its dependencies, to MODULE_ORDER (paths under lib/modules).
add_module() {
  local file dep
  file=$(module_file "$1") || die "the kernel has no module $1"
  case " ${MODULE_ORDER[*]:-} " in *" $file "*) return 0 ;; esac
  local deps
  deps=$(tr '\0' '\n' <"$MODULES_ROOT/$file" | sed -n 's/^depends=//p' | head -1)
  for dep in ${deps//,/ }; do add_module "$dep"; done
  MODULE_ORDER+=("$file")
}

# Builds $LAB_DIR/initramfs.cpio from the packages and the build.
build_initramfs() {
  ROOT=$LAB_DIR/root
  rm -rf "$ROOT"
  mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,lib/systemd,lib/modules,proc,sys,dev,tmp,run,var,etc/udev,lab/bin}
  ln -s /run "$ROOT/var/run"  # usbip attach records its connections in /var/run/vhci_hcd

  cp /bin/busybox "$ROOT/bin/busybox"
  if ldd /bin/busybox >/dev/null 2>&1; then die "/bin/busybox is not static: install busybox-static"; fi
  install -m 755 "$LAB_SRC/guest/init" "$ROOT/init"
  install -m 755 "$LAB_SRC/guest/serve" "$LAB_SRC/guest/start-agent" "$LAB_SRC/guest/with-shim" \
    "$LAB_SRC/guest/bench-run" \
    "$ROOT/lab/"
  printf 'root:x:0:0:root:/:/bin/sh\n' >"$ROOT/etc/passwd"
  printf 'root:x:0:\n' >"$ROOT/etc/group"

  MODULES_ROOT=$KERNEL_DIR/lib/modules/$KERNEL_VERSION
  mapfile -t MODULE_FILES < <(cd "$MODULES_ROOT" && find kernel -name '*.ko*')
  MODULE_ORDER=()
  local m boot_count
  for m in "${GUEST_MODULES[@]}"; do add_module "$m"; done
  boot_count=${#MODULE_ORDER[@]}
  for m in "${GUEST_USBIP_MODULES[@]}"; do add_module "$m"; done
  local usbip_count=${#MODULE_ORDER[@]}
  for m in "${GUEST_NETEM_MODULES[@]}"; do add_module "$m"; done
  for m in "${MODULE_ORDER[@]}"; do
    case "$m" in *.ko) ;; *) die "module $m is compressed: the lab expects plain .ko files" ;; esac
    mkdir -p "$ROOT/lib/modules/$(dirname "$m")"
    cp "$MODULES_ROOT/$m" "$ROOT/lib/modules/$m"
  done
  printf '%s\n' "${MODULE_ORDER[@]:0:boot_count}" >"$ROOT/lab/modules"
  printf '%s\n' "${MODULE_ORDER[@]:boot_count:usbip_count-boot_count}" >"$ROOT/lab/modules-usbip"
  printf '%s\n' "${MODULE_ORDER[@]:usbip_count}" >"$ROOT/lab/modules-netem"

  copy_program "$UDEV_DIR/bin/udevadm" /bin/udevadm
  ln -s /bin/udevadm "$ROOT/lib/systemd/systemd-udevd"
  copy_program "$(command -v lsusb)" /usr/bin/lsusb
  copy_program /usr/sbin/usbip /usr/sbin/usbip
  copy_program /usr/sbin/usbipd /usr/sbin/usbipd
  # iproute2's tc (busybox's knows no netem), at its own path: /bin/tc is busybox's.
  copy_program /usr/sbin/tc /usr/sbin/tc
  if [ "${USBNET_LAB_PROFILE:-0}" = 1 ]; then
    # The benchmark's profile of one URB (lab bench with USBNET_LAB_PROFILE=1): perf, from
    # Debian's linux-perf for the guest's kernel, and strace; the agent keeps its symbols.
    copy_program "$(command -v perf)" /usr/bin/perf
    copy_program "$(command -v strace)" /usr/bin/strace
  fi
  # lsusb names vendors and classes from udev's hwdb: the guest gets the host's (or none, like
  # the host), so that the two sides print the same names.
  local hwdb
  for hwdb in /etc/udev/hwdb.bin /usr/lib/udev/hwdb.bin /lib/udev/hwdb.bin; do
    if [ -f "$hwdb" ]; then
      mkdir -p "$ROOT$(dirname "$hwdb")"
      cp "$hwdb" "$ROOT$hwdb"
    fi
  done
  [ -f /usr/share/misc/usb.ids ] && mkdir -p "$ROOT/usr/share/hwdata" &&
    cp /usr/share/misc/usb.ids "$ROOT/usr/share/hwdata/usb.ids"

  copy_program "$AGENT" /lab/bin/usbnet-agent "$([ "${USBNET_LAB_PROFILE:-0}" = 1 ] || echo strip)"
  copy_program "$BUILD_DIR/examples/list_devices" /lab/bin/list_devices strip
  local p
  for p in "${LAB_PROGRAM_NAMES[@]}"; do copy_program "$PROGRAMS/$p" "/lab/bin/$p" strip; done
  copy_shim

  (cd "$ROOT" && find . | busybox cpio -o -H newc --quiet) >"$LAB_DIR/initramfs.cpio" ||
    die "packing the initramfs failed"
}

# The shim, for programs in the guest that use its local devices and the simulated agent's
# together (/lab/with-shim), and what LD_PRELOAD gets there: $PRELOAD with the shim's path
# replaced (a sanitized build preloads the sanitizer runtimes first; they go to the same paths).
copy_shim() {
  copy_program "$SHIM" /lab/lib/libusbnet.so "$([ "${USBNET_LAB_PROFILE:-0}" = 1 ] || echo strip)"
  local entry entries preload=()
  IFS=: read -ra entries <<<"$PRELOAD"
  for entry in "${entries[@]}"; do
    [ -n "$entry" ] || continue
    if [ "$entry" -ef "$SHIM" ]; then
      preload+=(/lab/lib/libusbnet.so)
    else
      copy_program "$entry" "$entry"
      preload+=("$entry")
    fi
  done
  (IFS=:; echo "${preload[*]}") >"$ROOT/lab/preload"
}

prepare_image() {
  lab_install_missing
  require_build
  fetch_guest_packages
  mkdir -p "$LAB_DIR"
  build_initramfs
}
