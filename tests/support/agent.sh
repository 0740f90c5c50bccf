# Shell helpers for the tests that drive usbnet-agent from scripts (tests/capture,
# tests/package); sourced. The script defines fail MESSAGE.
#
# start_agent LOG AGENT ARGS...: starts AGENT with ARGS (they should include --listen
# 127.0.0.1:0) in the background, its output in LOG; sets AGENT_PID, and PORT to the port it
# says it listens on.
start_agent() {
  local log=$1
  shift
  # Emptied here, not only by the background job's redirection, which may come after the first
  # look below: the previous agent's port would be read from the old log.
  : >"$log"
  "$@" >"$log" 2>&1 &
  AGENT_PID=$!
  PORT=
  for _ in $(seq 100); do
    PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$log")
    [ -n "$PORT" ] && return 0
    kill -0 "$AGENT_PID" 2>/dev/null || fail "the agent did not start: $(cat "$log")"
    sleep 0.1
  done
  fail "the agent did not say its port: $(cat "$log")"
}

# stop_agent: SIGTERM, and waits for it.
stop_agent() {
  [ -n "${AGENT_PID:-}" ] || return 0
  kill "$AGENT_PID" 2>/dev/null || true
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=
}
