# shellcheck shell=bash
# The pcscd check's session, run by check_pcscd (checks.sh) inside a private mount namespace:
# a tmpfs over /run for pcscd's socket, pcscd in the foreground under `usbnet run` with the
# reader.conf.d of $LAB_PCSCD_DIR, then pcsc_scan and pyscard as its clients. Their output goes
# to $LAB_PCSCD_DIR (readers.out, status.out, pcscd.log); the exit status is pyscard's.
set -u
mount -t tmpfs usbnet-lab-run /run && mkdir /run/pcscd || {
  echo "cannot mount a private /run" >"$LAB_PCSCD_DIR/status.out"
  exit 3
}
usbnet_run --devices "$CCID_ID" pcscd --foreground --debug \
  --config "$LAB_PCSCD_DIR/reader.conf.d" >"$LAB_PCSCD_DIR/pcscd.log" 2>&1 &
pcscd=$!
for _ in $(seq 200); do
  [ -S /run/pcscd/pcscd.comm ] && break
  sleep 0.1
done
timeout 30 pcsc_scan -r >"$LAB_PCSCD_DIR/readers.out" 2>&1
timeout 30 /usr/bin/python3 - >"$LAB_PCSCD_DIR/status.out" 2>&1 <<'EOF'
from smartcard.scard import *
result, context = SCardEstablishContext(SCARD_SCOPE_USER)
assert result == SCARD_S_SUCCESS, SCardGetErrorMessage(result)
result, readers = SCardListReaders(context, [])
assert result == SCARD_S_SUCCESS and readers, SCardGetErrorMessage(result)
result, states = SCardGetStatusChange(context, 10000, [(readers[0], SCARD_STATE_UNAWARE)])
assert result == SCARD_S_SUCCESS, SCardGetErrorMessage(result)
reader, state, atr = states[0]
if state & SCARD_STATE_EMPTY:
    slot = "empty"
elif state & SCARD_STATE_PRESENT:
    slot = "a card, ATR " + bytes(atr).hex()
else:
    slot = f"state {state:#x}"
print(f"{reader}: {slot}")
EOF
status=$?
kill "$pcscd" 2>/dev/null
wait "$pcscd"
exit "$status"
