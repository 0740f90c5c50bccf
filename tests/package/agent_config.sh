#!/usr/bin/env bash
# usbnet-agent --config FILE: every setting from a TOML file, flags beat the file, and one clear
# line naming the file, the line and the key for anything wrong in it; the service's example
# configuration (packaging/agent.toml) documents every option that a file may set.
#
#   agent_config.sh BUILD_DIR
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(cd "$1" && pwd)
AGENT=$BUILD/src/agent/usbnet-agent
CLI=$BUILD/src/cli/usbnet
EXAMPLE=$HERE/../../packaging/agent.toml
WORK=$(mktemp -d "$BUILD/tests/package/agent_config.XXXXXX")
AGENT_PID=
source "$HERE/../support/agent.sh"
trap 'stop_agent; rm -rf "$WORK"' EXIT

say() { printf '== %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  [ -f "$WORK/agent.log" ] && tail -n 20 "$WORK/agent.log" >&2
  exit 1
}

# The agent's one error line for a configuration file, and its exit status 2.
expect_error() {  # FILE EXPECTED_LINE [FLAGS...]
  local file=$1 expected=$2
  shift 2
  local status=0
  "$AGENT" --config "$file" "$@" >"$WORK/out" 2>"$WORK/err" || status=$?
  [ "$status" -eq 2 ] || fail "exit status $status for $file, expected 2"
  [ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "not one line: $(cat "$WORK/err")"
  [ "$(cat "$WORK/err")" = "$expected" ] || fail "got '$(cat "$WORK/err")', expected '$expected'"
  say "refused: $expected"
}

agent() { start_agent "$WORK/agent.log" "$AGENT" "$@"; }

say "every option a file may set is documented in the example configuration"
# The options' part of --help: the subcommands' texts name other programs' flags (usbnet pair --code).
options=$("$AGENT" --help | sed '/^Subcommands:/,$d' | grep -o -- '--[a-z][a-z-]*' | sort -u |
  grep -vx -- '--help\|--version\|--config\|--write-udev-rules')
for option in $options; do
  grep -q "^#\{0,1\}${option#--} = " "$EXAMPLE" || fail "$EXAMPLE does not show '${option#--}'"
done
say "$(echo "$options" | wc -l) options, each in $EXAMPLE"
"$AGENT" --config "$EXAMPLE" --write-udev-rules - >/dev/null || fail "the example is refused"

say "a file that sets every option"
openssl req -x509 -newkey ed25519 -nodes -days 2 -subj /CN=test-ca -keyout "$WORK/ca.key" \
  -out "$WORK/ca.pem" 2>/dev/null || fail "openssl cannot make a CA certificate"
cat >"$WORK/all.toml" <<TOML
listen = "127.0.0.1:0"
export = "1209:0001"
simulate = ["loopback", "mouse"]
no-usb = true
log-level = "debug"
heartbeat = 700
dead-after = 5000
piece-size = 1024
rescan = 0
pcap = "$WORK/agent.pcap"
pcap-max-bytes = 65536
max-connections = 100
max-connections-per-address = 10
hello-timeout = 5000
max-urbs = 1000
max-urb-memory = 67108864
max-send-queue = 16777216
state-dir = "$WORK/state"
insecure = true
client-ca = "$WORK/ca.pem"
TOML
for option in $options; do
  grep -q "^${option#--} = " "$WORK/all.toml" || fail "the test's file does not set ${option#--}"
done
agent --config "$WORK/all.toml"
listing=$("$CLI" list --agent "127.0.0.1:$PORT")
echo "$listing"
grep -q "1209:0001" <<<"$listing" || fail "the loopback device is not exported"
grep -q "1209:0002" <<<"$listing" && fail "the mouse is exported, but export names 1209:0001 only"
grep -q "debug:" "$WORK/agent.log" || fail "log-level = \"debug\" had no effect"
[ -s "$WORK/agent.pcap" ] || fail "pcap = ... created no capture"
[ -s "$WORK/state/agent_key" ] || fail "state-dir = ... holds no agent key"
grep -q "warn: --insecure" "$WORK/agent.log" || fail "insecure = true had no effect"
stop_agent

say "a flag beats the file"
agent --config "$WORK/all.toml" --export 1209:0002
listing=$("$CLI" list --agent "127.0.0.1:$PORT")
grep -q "1209:0002" <<<"$listing" || fail "--export 1209:0002 lost against the file"
grep -q "1209:0001" <<<"$listing" && fail "the file's export won over the flag"
stop_agent

say "errors name the file, the line and the key"
printf 'listen = "127.0.0.1:0"\nbogus = 3\n' >"$WORK/unknown.toml"
expect_error "$WORK/unknown.toml" \
  "usbnet-agent: $WORK/unknown.toml:2: unknown key 'bogus' (the keys are the long flags of --help, without the dashes)"
printf '# settings\nheartbeat = 50\n' >"$WORK/range.toml"
expect_error "$WORK/range.toml" \
  "usbnet-agent: $WORK/range.toml:2: key 'heartbeat': --heartbeat: Value 50 not in range 100 to 600000"
printf 'heartbeat = "often"\n' >"$WORK/type.toml"
message=$("$AGENT" --config "$WORK/type.toml" 2>&1 || true)
grep -q "^usbnet-agent: $WORK/type.toml:1: key 'heartbeat': " <<<"$message" ||
  fail "a string for a number is not reported with its line and key: $message"
printf 'config = "other.toml"\n' >"$WORK/config.toml"
expect_error "$WORK/config.toml" \
  "usbnet-agent: $WORK/config.toml:1: unknown key 'config' (the keys are the long flags of --help, without the dashes)"
printf 'listen = \n' >"$WORK/syntax.toml"
message=$("$AGENT" --config "$WORK/syntax.toml" 2>&1 || true)
grep -q "^usbnet-agent: $WORK/syntax.toml:1:[0-9]*: " <<<"$message" ||
  fail "a syntax error is not reported with its line: $message"
message=$("$AGENT" --config "$WORK/missing.toml" 2>&1 || true)
expect_error "$WORK/missing.toml" "$message"
grep -q "^usbnet-agent: $WORK/missing.toml" <<<"$message" || fail "a missing file is not named: $message"
say "[[allow]] tables: the device policy, after the settings"
cat >"$WORK/policy.toml" <<TOML
simulate = ["loopback", "mouse"]
no-usb = true
listen = "127.0.0.1:0"
state-dir = "$WORK/state"

[[allow]]
clients = ["plaintext"]
devices = ["1209:0002"]
TOML
agent --config "$WORK/policy.toml"
listing=$("$CLI" list --agent "127.0.0.1:$PORT")
echo "$listing"
grep -q "1209:0002" <<<"$listing" || fail "the policy's device is not listed to a plaintext client"
grep -q "1209:0001" <<<"$listing" && fail "a device the policy does not give is listed"
grep -q "device policy: 1 \[\[allow\]\] table in $WORK/policy.toml" "$WORK/agent.log" ||
  fail "the agent does not say it has a device policy"
stop_agent
printf '[[allow]]\nclients = ["*"]\ndevices = ["1209:0001", "usb-stick"]\n' >"$WORK/bad_rule.toml"
expect_error "$WORK/bad_rule.toml" \
  "usbnet-agent: $WORK/bad_rule.toml:3: [[allow]] table 1: devices: 'usb-stick' is not a device rule: expected VID:PID in hex (046d:c52b, 1209:*, or * for every device), class=HH, serial=TEXT or port=BUS-PORT[.PORT...]"
printf '[[allow]]\nclients = ["*"]\ndevices = ["*"]\nexport = "*"\n' >"$WORK/late_key.toml"
expect_error "$WORK/late_key.toml" \
  "usbnet-agent: $WORK/late_key.toml:4: [[allow]] table 1: unknown key 'export' (a table has clients and devices; the agent's other settings go above the first [[allow]])"

say "--write-udev-rules: the export list as udev rules, in a directory made for them"
rules=$WORK/run/udev/rules.d/70-usbnet-agent.rules
printf 'export = "0483:df11,1209:*"\n' >"$WORK/udev.toml"
"$AGENT" --config "$WORK/udev.toml" --write-udev-rules "$rules" || fail "--write-udev-rules failed"
cat "$rules"
grep -c '^ACTION' "$rules" | grep -qx 2 || fail "not one rule per export pattern"
grep -q 'ATTR{bDeviceClass}!="09", ATTR{idVendor}=="0483", ATTR{idProduct}=="df11", GROUP="usbnet", MODE="0664"' \
  "$rules" || fail "no rule for 0483:df11"
grep -q 'ATTR{idVendor}=="1209", GROUP="usbnet"' "$rules" || fail "no rule for 1209:*"
"$AGENT" --config "$EXAMPLE" --write-udev-rules "$rules" || fail "--write-udev-rules failed"
grep -q '^ACTION' "$rules" && fail "the example configuration exports nothing, yet its rules grant a device"
say "passed"
