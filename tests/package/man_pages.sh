#!/usr/bin/env bash
# The man pages (docs/man: help2man from the programs' --help) format without a warning, and
# say every flag of the help they were made from; libusbnet(7)'s environment names every
# variable the shim reads and every variable of the README's table.
#
#   man_pages.sh BUILD_DIR
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE=$(cd "$HERE/../.." && pwd)
BUILD=$(cd "$1" && pwd)
MAN=$BUILD/docs/man
WORK=$(mktemp -d "$BUILD/tests/package/man_pages.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
say() { printf '== %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

check_page() {  # PAGE.SECTION HELP_TEXT_FILE
  local page=$MAN/$1.gz help=$2
  [ -f "$page" ] || fail "$page was not generated"
  zcat "$page" >"$WORK/page"
  LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$WORK/page" >"$WORK/text" 2>"$WORK/man.log" ||
    fail "man -l $1: $(cat "$WORK/man.log")"
  [ -s "$WORK/man.log" ] && fail "man --warnings $1: $(cat "$WORK/man.log")"
  groff -ww -z -man "$WORK/page" 2>"$WORK/groff.log" || fail "groff $1: $(cat "$WORK/groff.log")"
  [ -s "$WORK/groff.log" ] && fail "groff -ww $1: $(cat "$WORK/groff.log")"
  # The formatted text without hyphenation or the overstrikes of bold.
  sed 's/.\x08//g' "$WORK/text" | tr -d '\n\r ' | sed 's/‐//g' >"$WORK/flat"
  local missing=()
  for flag in $(grep -o -- '--[a-z][a-z-]*' "$help" | sort -u); do
    grep -qF -- "${flag//-/}" <(sed 's/[-‐−]//g' "$WORK/flat") || missing+=("$flag")
  done
  [ ${#missing[@]} -eq 0 ] || fail "$1 lacks ${missing[*]}"
  say "$1: no warnings, every flag of its help ($(grep -o -- '--[a-z][a-z-]*' "$help" | sort -u | wc -l))"
}

"$BUILD/src/agent/usbnet-agent" --help >"$WORK/agent.help"
check_page usbnet-agent.8 "$WORK/agent.help"
"$BUILD/src/cli/usbnet" --help-all >"$WORK/usbnet.help"
check_page usbnet.1 "$WORK/usbnet.help"
"$BUILD/src/cli/usbnet" env --help >"$WORK/env.help"
check_page libusbnet.7 "$WORK/env.help"

say "libusbnet(7): the shim's variables"
zcat "$MAN/libusbnet.7.gz" >"$WORK/libusbnet.7"
documented=$(grep -o 'USBNET_[A-Z_]*' "$WORK/env.help" | sort -u)
read_by_shim=$(grep -rhoE 'getenv\("USBNET_[A-Z_]*"\)' "$SOURCE/src/interpose" |
  grep -o 'USBNET_[A-Z_]*' | sort -u)
in_readme=$(sed -n '/^### The shim.s environment/,/^###/p' "$SOURCE/README.md" |
  grep -o '^| `USBNET_[A-Z_]*`' | grep -o 'USBNET_[A-Z_]*' | sort -u)
for v in $read_by_shim $in_readme; do
  grep -qx "$v" <<<"$documented" || fail "usbnet env does not describe $v"
done
for v in $documented; do
  grep -q "$v" "$WORK/libusbnet.7" || fail "libusbnet(7) lacks $v"
  grep -qx "$v" <<<"$in_readme" || fail "the README's table lacks $v"
done
say "$(echo "$documented" | wc -l) variables: read by the shim, in usbnet env, the man page and the README"
say "passed"
