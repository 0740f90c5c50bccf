#!/usr/bin/env bash
# The README's "Encrypting the link" recipe, end to end on loopback. The certificate commands
# and both stunnel configurations are taken from README.md itself (only the directory, the
# ports and, in some cases, the certificate lines differ; every line changed must be found in
# the README), so the test fails when the recipe there stops working.
#
#   tls_tunnel.sh CASE BUILD_DIR
#
# Every case runs the agent (simulated devices) on 127.0.0.1, a server-mode stunnel in front of
# it on a "public" port and a client-mode stunnel on a local port, then:
#   bulk_loopback        bulk_loopback (every byte checked) through the tunnel, mutual TLS
#   usbnet_list          usbnet list and lsusb (under the shim) through the tunnel
#   encryption_only      bulk_loopback without client certificates (the README's variant)
#   wrong_server_cert    the client trusts another key's certificate for lab-pc: refused
#   no_client_cert       the client presents no certificate: refused
#   unknown_client_cert  the client presents a certificate the server does not list: refused
#   plaintext            the plain protocol on the public port is refused; that port speaks
#                        TLS with lab-pc's certificate, and the tunnel beside it works
# A refused client must never reach the agent (no connection in its log), and the program under
# the shim must print one warning line, find no remote device and end at once.
#
# USBNET_TUNNEL_PRELOAD: the LD_PRELOAD value that loads the shim (default: BUILD_DIR's
# libusbnet.so; CMake puts the sanitizer runtimes first in sanitizer builds). USBNET_STUNNEL:
# the stunnel binary (default stunnel4, else stunnel).
set -euo pipefail

usage() {
  sed -n '7,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -eq 2 ] || usage
CASE=$1
case "$CASE" in
  bulk_loopback | usbnet_list | encryption_only | wrong_server_cert | no_client_cert | \
    unknown_client_cert | plaintext) ;;
  *) usage ;;
esac
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
README=$HERE/../../README.md
BUILD=$(cd "$2" && pwd)
AGENT_BIN=$BUILD/src/agent/usbnet-agent
CLI_BIN=$BUILD/src/cli/usbnet
BULK_BIN=$BUILD/examples/bulk_loopback
PRELOAD=${USBNET_TUNNEL_PRELOAD:-$BUILD/src/interpose/libusbnet.so}
STUNNEL=${USBNET_STUNNEL:-$(command -v stunnel4 || command -v stunnel || true)}
# Whatever happens to this script, its background processes end after this many seconds.
LIFETIME=300

say() { printf '== [%s] %s\n' "$CASE" "$*"; }

WORK=
PIDS=()
LOGS=()  # shown when the test fails
fail() {
  printf 'FAIL [%s]: %s\n' "$CASE" "$*" >&2
  exit 1
}

# Ends a background process, started as `timeout ... COMMAND &`: SIGTERM (timeout passes it on),
# up to 5 s, then SIGKILL to timeout's process group, COMMAND included; reaps it.
stop_process() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local kept=()
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}

cleanup() {
  local status=$?
  # Whatever fails here (say, stderr is a closed pipe), everything is stopped and removed.
  set +e
  trap - EXIT INT TERM
  trap '' PIPE
  for pid in "${PIDS[@]}"; do stop_process "$pid"; done
  if [ "$status" -ne 0 ] && [ -n "$WORK" ]; then
    for log in "${LOGS[@]}"; do
      [ -s "$log" ] || continue
      printf -- '---- %s (last 40 lines)\n' "${log#"$WORK"/}" >&2
      tail -n 40 "$log" >&2
    done
  fi
  [ -n "$WORK" ] && rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for f in "$AGENT_BIN" "$CLI_BIN" "$BULK_BIN"; do
  [ -x "$f" ] || fail "$f is missing: build first"
done
[ -n "$STUNNEL" ] || fail "stunnel is not installed (Debian package stunnel4; ./run installs it)"
command -v openssl >/dev/null || fail "openssl is not installed (./run installs it)"
[ -f "$README" ] || fail "$README is missing"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/usbnet-tunnel.XXXXXX")
cd "$WORK"

# ---- the recipe, from the README --------------------------------------------------------------

readme_section() {
  awk '/^### Encrypting the link$/ { on = 1; next } on && /^###? / { exit } on' "$README"
}

# The fenced block of that section whose first line starts with $1.
readme_block() {
  readme_section | awk -v key="$1" '
    /^```/ {
      if (inside) { if (wanted) { found = 1; exit } inside = 0 } else { inside = 1; first = 1 }
      next
    }
    inside && first { wanted = index($0, key) == 1; first = 0 }
    inside && wanted { print }
    END { exit !found }'
}

# Runs the section's `openssl req` command that writes certificate $1, in directory $2.
make_certificate() {
  local out=$1 dir=$2 commands line
  # Continuation lines joined; one command per line.
  commands=$(readme_section | sed -e ':a' -e '/\\$/{N; s/\\\n[[:space:]]*/ /; ba' -e '}' |
    grep -E "^openssl req .* -out $out\$" || true)
  [ "$(printf '%s\n' "$commands" | grep -c .)" -eq 1 ] ||
    fail "README: expected one 'openssl req ... -out $out' command in 'Encrypting the link'"
  read -ra line <<<"$commands"
  mkdir -p "$dir"
  (cd "$dir" && "${line[@]}") >"$dir/openssl.log" 2>&1 ||
    fail "'${line[*]}' failed: $(cat "$dir/openssl.log")"
}

# config_from_readme KEY DIR OUT [README_LINE REPLACEMENT]...: the README's configuration whose
# block starts with KEY, written to OUT for a stunnel that stays in the foreground with no pid
# file and no syslog, and logs at level info on stderr. /etc/stunnel/ becomes DIR/; each
# README_LINE must occur once and becomes REPLACEMENT (an empty one removes the line).
config_from_readme() {
  local key=$1 dir=$2 out=$3 block
  shift 3
  block=$(readme_block "$key") ||
    fail "README: no configuration block starting with '$key' in 'Encrypting the link'"
  grep -q '/etc/stunnel/' <<<"$block" || fail "README: block '$key' names no /etc/stunnel/ file"
  block=${block//\/etc\/stunnel\//$dir\/}
  while [ $# -ge 2 ]; do
    local from=$1 to=$2 count
    shift 2
    count=$(grep -cxF -- "$from" <<<"$block" || true)
    [ "$count" -eq 1 ] || fail "README: block '$key' has the line '$from' $count times, not once"
    block=$(awk -v from="$from" -v to="$to" '$0 == from { if (to != "") print to; next } 1' \
      <<<"$block")
  done
  {
    echo "; tests/tunnel/tls_tunnel.sh: the README's configuration, run by the test"
    echo "pid ="
    echo "syslog = no"
    echo "debug = info"
    printf '%s\n' "$block"
  } >"$out"
}

# start_stunnel NAME TEMPLATE: starts stunnel on TEMPLATE, a configuration whose accept port is
# @PORT@, on a free port (random candidates, another one if it is taken); sets STUNNEL_PORT.
start_stunnel() {
  local name=$1 template=$2 port pid
  local conf=$WORK/$name.conf log=$WORK/$name.log
  LOGS+=("$log")
  for _ in $(seq 30); do
    port=$((20000 + RANDOM % 12000))
    sed "s/@PORT@/$port/" "$template" >"$conf"
    timeout -k 5 "$LIFETIME" "$STUNNEL" "$conf" >"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
      if grep -q 'Accepting new connections' "$log" 2>/dev/null; then
        STUNNEL_PORT=$port
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    stop_process "$pid"
    grep -q "Binding service \[usbnet\] failed" "$log" || fail "stunnel ($name) did not start"
    say "port $port is taken; another one for stunnel ($name)"
  done
  fail "no free port for stunnel ($name) in 30 tries"
}

start_agent() {
  local log=$WORK/agent.log
  LOGS+=("$log")
  timeout -k 5 "$LIFETIME" "$AGENT_BIN" --listen 127.0.0.1:0 --no-usb --simulate loopback,mouse \
    --state-dir "$WORK/state" --log-level debug >"$log" 2>&1 &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  AGENT_PORT=
  for _ in $(seq 300); do
    # (the log may not exist yet)
    AGENT_PORT=$(sed -n 's/.*listening on .*(port \([0-9]*\)).*/\1/p' "$log" 2>/dev/null || true)
    [ -n "$AGENT_PORT" ] && return 0
    sleep 0.1
  done
  fail "the agent did not say which port it listens on within 30 s"
}

# run_program NAME LIMIT COMMAND...: runs COMMAND without this environment's USBNET_* variables,
# for at most LIMIT seconds; RUN_STATUS, and its output in $WORK/NAME.out and NAME.err.
run_program() {
  local name=$1 limit=$2 unset=()
  shift 2
  for v in $(compgen -e); do [[ $v == USBNET_* ]] && unset+=(-u "$v"); done
  LOGS+=("$WORK/$name.out" "$WORK/$name.err")
  set +e
  timeout -k 5 "$limit" env "${unset[@]}" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  RUN_STATUS=$?
  set -e
  if [ "$RUN_STATUS" -eq 124 ] || [ "$RUN_STATUS" -eq 137 ]; then
    fail "$name did not end within $limit s"
  fi
}

expect_in() {  # expect_in FILE TEXT WHAT
  grep -qF -- "$2" "$1" || fail "$3: '$2' not in ${1#"$WORK"/}"
}
expect_not_in() {  # expect_not_in FILE TEXT WHAT
  ! grep -qF -- "$2" "$1" || fail "$3: '$2' in ${1#"$WORK"/}"
}

# ---- the two machines -------------------------------------------------------------------------

# lab-pc/ and client/ stand for /etc/stunnel on each machine. The keys are made by the README's
# commands; "copy" and "append" are the README's steps between the machines.
setup_certificates() {
  make_certificate usbnet-server.crt "$WORK/lab-pc"
  make_certificate usbnet-client.crt "$WORK/client"
  cp "$WORK/lab-pc/usbnet-server.crt" "$WORK/client/"
  cat "$WORK/client/usbnet-client.crt" >>"$WORK/lab-pc/usbnet-clients.crt"
  # Another machine, made the same way (same names), which is not part of this setup.
  make_certificate usbnet-server.crt "$WORK/other"
  make_certificate usbnet-client.crt "$WORK/other"
}

# start_server [README_LINE REPLACEMENT]...: lab-pc's stunnel in front of the agent; PUBLIC_PORT.
start_server() {
  config_from_readme "; lab-pc:" "$WORK/lab-pc" "$WORK/server.template" \
    "accept = 3242" "accept = 127.0.0.1:@PORT@" \
    "connect = 127.0.0.1:3241" "connect = 127.0.0.1:$AGENT_PORT" "$@"
  start_stunnel server "$WORK/server.template"
  PUBLIC_PORT=$STUNNEL_PORT
  say "agent on 127.0.0.1:$AGENT_PORT, TLS on 127.0.0.1:$PUBLIC_PORT"
}

# start_client [README_LINE REPLACEMENT]...: the program machine's stunnel; LOCAL_PORT.
start_client() {
  config_from_readme "; the program's machine:" "$WORK/client" "$WORK/client.template" \
    "accept = 127.0.0.1:3241" "accept = 127.0.0.1:@PORT@" \
    "connect = lab-pc:3242" "connect = 127.0.0.1:$PUBLIC_PORT" "$@"
  start_stunnel client "$WORK/client.template"
  LOCAL_PORT=$STUNNEL_PORT
  say "client stunnel on 127.0.0.1:$LOCAL_PORT"
}

# ---- what is checked --------------------------------------------------------------------------

# bulk_loopback through the tunnel: every byte checked, the shim silent, and the agent served a
# client that came through stunnel, which checked both certificates (when $1 is "mutual").
expect_bulk_loopback() {
  local rounds=$1 auth=$2
  say "bulk_loopback 1209:0001 $rounds under the shim, USBNET_AGENT=127.0.0.1:$LOCAL_PORT"
  run_program bulk 120 LD_PRELOAD="$PRELOAD" USBNET_AGENT="127.0.0.1:$LOCAL_PORT" \
    "$BULK_BIN" 1209:0001 "$rounds"
  [ "$RUN_STATUS" -eq 0 ] || fail "bulk_loopback exited with status $RUN_STATUS"
  expect_in bulk.out "loopback: $rounds rounds OK" "bulk_loopback"
  expect_in bulk.out "source: 10 transfers, pattern OK" "bulk_loopback"
  expect_in bulk.out "sink: 655360 bytes received, 0 off pattern" "bulk_loopback"
  [ ! -s bulk.err ] || fail "bulk_loopback (and the shim) wrote on stderr"
  expect_in agent.log "client connected (libusbnet" "the agent"
  expect_in client.log "Certificate accepted at depth=0: CN=lab-pc" "the client's stunnel"
  expect_in client.log "TLS connected" "the client's stunnel"
  expect_in server.log "TLS accepted" "lab-pc's stunnel"
  if [ "$auth" = mutual ]; then
    expect_in server.log "Certificate accepted at depth=0: CN=alice" "lab-pc's stunnel"
  else
    expect_not_in server.log "Certificate accepted" "lab-pc's stunnel"
  fi
}

# A client on PORT that must not get through: bulk_loopback under the shim finds no device and
# ends at once, the shim's only output one warning line; usbnet list fails; the agent saw no
# connection at all.
expect_refused() {
  local port=$1
  say "bulk_loopback under the shim, USBNET_AGENT=127.0.0.1:$port: refused"
  run_program refused 30 LD_PRELOAD="$PRELOAD" USBNET_AGENT="127.0.0.1:$port" \
    "$BULK_BIN" 1209:0001 200
  [ "$RUN_STATUS" -eq 1 ] || fail "bulk_loopback exited with status $RUN_STATUS, not 1"
  [ ! -s refused.out ] || fail "bulk_loopback printed something on stdout"
  # The tunnel accepted the TCP connection and then dropped it: the handshake failed.
  local warning="^libusbnet: warn: cannot reach the agent at 127\.0\.0\.1:$port: the handshake failed: .*; going on without its devices\$"
  [ "$(grep -c '^libusbnet' refused.err || true)" -eq 1 ] ||
    fail "the shim did not print exactly one line"
  grep -qE -- "$warning" refused.err || fail "the shim's line is not the warning expected"
  expect_in refused.err "no device 1209:0001 found" "bulk_loopback"
  [ "$(wc -l <refused.err)" -eq 2 ] || fail "stderr has more than the shim's and the program's line"
  say "stderr: $(paste -sd'|' refused.err)"

  say "usbnet list --agent 127.0.0.1:$port: refused"
  run_program list_refused 30 "$CLI_BIN" list --agent "127.0.0.1:$port"
  [ "$RUN_STATUS" -eq 1 ] || fail "usbnet list exited with status $RUN_STATUS, not 1"
  expect_in list_refused.err "usbnet: cannot list 127.0.0.1:$port: the handshake failed: " \
    "usbnet list"
  expect_not_in list_refused.out "1209:0001" "usbnet list"

  expect_not_in agent.log "connection accepted" "the agent"
}

# ---- the cases --------------------------------------------------------------------------------

setup_certificates
start_agent

case "$CASE" in
  bulk_loopback)
    start_server
    start_client
    expect_bulk_loopback 200 mutual
    ;;

  usbnet_list)
    start_server
    start_client
    say "usbnet list --agent 127.0.0.1:$LOCAL_PORT"
    run_program list 60 "$CLI_BIN" list --agent "127.0.0.1:$LOCAL_PORT"
    [ "$RUN_STATUS" -eq 0 ] || fail "usbnet list exited with status $RUN_STATUS"
    expect_in list.out "ID 1209:0001 usbnet Loopback" "usbnet list"
    expect_in list.out "ID 1209:0002 usbnet Boot Mouse" "usbnet list"
    expect_in agent.log "client connected (usbnet list)" "the agent"
    say "lsusb -d 1209: under the shim"
    run_program lsusb 60 LD_PRELOAD="$PRELOAD" USBNET_AGENT="127.0.0.1:$LOCAL_PORT" lsusb -d 1209:
    [ "$RUN_STATUS" -eq 0 ] || fail "lsusb exited with status $RUN_STATUS"
    grep -qE 'Bus 2[0-9][0-9] Device [0-9]+: ID 1209:0001' lsusb.out || fail "lsusb: no 1209:0001"
    grep -qE 'Bus 2[0-9][0-9] Device [0-9]+: ID 1209:0002' lsusb.out || fail "lsusb: no 1209:0002"
    expect_in server.log "Certificate accepted at depth=0: CN=alice" "lab-pc's stunnel"
    ;;

  encryption_only)
    # The README: without CAfile and verifyPeer on lab-pc, and cert and key on the client.
    start_server "CAfile = $WORK/lab-pc/usbnet-clients.crt" "" "verifyPeer = yes" ""
    start_client "cert = $WORK/client/usbnet-client.crt" "" \
      "key = $WORK/client/usbnet-client.key" ""
    expect_bulk_loopback 50 none
    ;;

  wrong_server_cert)
    # The program's machine was given the certificate of another key, also called lab-pc.
    cp "$WORK/other/usbnet-server.crt" "$WORK/client/usbnet-server.crt"
    start_server
    start_client
    expect_refused "$LOCAL_PORT"
    expect_in client.log "Rejected by CERT at depth=0: CN=lab-pc" "the client's stunnel"
    expect_in client.log "certificate verify failed" "the client's stunnel"
    expect_not_in server.log "TLS accepted" "lab-pc's stunnel"
    ;;

  no_client_cert)
    start_server
    start_client "cert = $WORK/client/usbnet-client.crt" "" \
      "key = $WORK/client/usbnet-client.key" ""
    expect_refused "$LOCAL_PORT"
    expect_in server.log "peer did not return a certificate" "lab-pc's stunnel"
    expect_not_in server.log "TLS accepted" "lab-pc's stunnel"
    ;;

  unknown_client_cert)
    # lab-pc lists another machine's certificate, not this client's.
    cp "$WORK/other/usbnet-client.crt" "$WORK/lab-pc/usbnet-clients.crt"
    start_server
    start_client
    expect_refused "$LOCAL_PORT"
    expect_in server.log "Rejected by CERT at depth=0: CN=alice" "lab-pc's stunnel"
    expect_not_in server.log "TLS accepted" "lab-pc's stunnel"
    ;;

  plaintext)
    start_server
    start_client
    # The shim straight to the public port: stunnel wants a TLS handshake, not usbnet's HELLO.
    expect_refused "$PUBLIC_PORT"
    expect_in server.log "wrong version number" "lab-pc's stunnel"
    expect_not_in server.log "TLS accepted" "lab-pc's stunnel"
    # What answers there is TLS, with lab-pc's certificate.
    say "openssl s_client -connect 127.0.0.1:$PUBLIC_PORT"
    run_program s_client 30 openssl s_client -connect "127.0.0.1:$PUBLIC_PORT" \
      -CAfile "$WORK/client/usbnet-server.crt" -verify_return_error </dev/null
    openssl x509 -in s_client.out -noout -fingerprint -sha256 >presented.txt 2>&1 ||
      fail "no certificate from the public port"
    openssl x509 -in "$WORK/lab-pc/usbnet-server.crt" -noout -fingerprint -sha256 >expected.txt
    cmp -s presented.txt expected.txt || fail "the public port did not present lab-pc's certificate"
    expect_in s_client.out "Verify return code: 0 (ok)" "openssl s_client"
    # The tunnel beside it works.
    say "usbnet list through the tunnel, 127.0.0.1:$LOCAL_PORT"
    run_program list 60 "$CLI_BIN" list --agent "127.0.0.1:$LOCAL_PORT"
    [ "$RUN_STATUS" -eq 0 ] || fail "usbnet list through the tunnel exited with $RUN_STATUS"
    expect_in list.out "ID 1209:0001 usbnet Loopback" "usbnet list"
    ;;
esac

# The agent stops cleanly, and no process of ours reported a sanitizer finding (in sanitizer
# builds).
stop_process "$AGENT_PID"
expect_in agent.log "usbnet-agent: info: stopped" "the agent"
for log in "${LOGS[@]}"; do
  ! grep -qE 'Sanitizer|runtime error:' "$log" 2>/dev/null ||
    fail "a sanitizer report in ${log#"$WORK"/}"
done
say "ok"
