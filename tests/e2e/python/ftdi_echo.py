# libftdi through its Python binding (python3-ftdi1), as a serial-port program uses it: open the
# adapter by VID:PID, set the line, write a few KiB and read back what the loopback plug
# returns. Prints one line per step; exits 1 at the first step that fails.
import sys

import ftdi1

VENDOR, PRODUCT = 0x1209, 0x0007
SIZE = 8192


def fail(what, ctx):
    print(f"FAIL {what}: {ftdi1.get_error_string(ctx)}")
    sys.exit(1)


ctx = ftdi1.new()
if ftdi1.usb_open(ctx, VENDOR, PRODUCT) != 0:
    fail("usb_open", ctx)
print(f"open: type {ctx.type}, max packet {ctx.max_packet_size}")
if ftdi1.set_baudrate(ctx, 115200) != 0:
    fail("set_baudrate", ctx)
if ftdi1.set_line_property(ctx, ftdi1.BITS_8, ftdi1.STOP_BIT_1, ftdi1.NONE) != 0:
    fail("set_line_property", ctx)
if ftdi1.setflowctrl(ctx, ftdi1.SIO_RTS_CTS_HS) != 0 or ftdi1.setdtr_rts(ctx, 1, 1) != 0:
    fail("flow control", ctx)
if ftdi1.set_latency_timer(ctx, 2) != 0:
    fail("set_latency_timer", ctx)
rc, latency = ftdi1.get_latency_timer(ctx)
print(f"latency: {latency[0]} ms")
rc, status = ftdi1.poll_modem_status(ctx)
print(f"modem status: 0x{status:04x}")

data = bytes((i * 7 + 3) % 256 for i in range(SIZE))
written = ftdi1.write_data(ctx, data)
if written != SIZE:
    fail(f"write_data returned {written}", ctx)
back = b""
for _ in range(1000):  # reads that find nothing return 0 after the latency timer
    rc, chunk = ftdi1.read_data(ctx, SIZE - len(back))
    if rc < 0:
        fail("read_data", ctx)
    back += chunk[:rc]
    if len(back) >= SIZE:
        break
print(f"echo: {written} bytes written, {len(back)} read, {'identical' if back == data else 'DIFFERENT'}")

if ftdi1.read_eeprom(ctx) != 0 or ftdi1.eeprom_decode(ctx, 0) != 0:
    fail("eeprom", ctx)
_, vendor = ftdi1.get_eeprom_value(ctx, ftdi1.VENDOR_ID)
_, product = ftdi1.get_eeprom_value(ctx, ftdi1.PRODUCT_ID)
_, manufacturer, description, serial = ftdi1.eeprom_get_strings(ctx)
print(f'eeprom: {vendor:04x}:{product:04x} "{manufacturer}" "{description}" "{serial}"')
ftdi1.usb_close(ctx)
ftdi1.free(ctx)
