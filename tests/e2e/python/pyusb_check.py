"""pyusb (python3-usb) against the simulated loopback and mouse of a usbnet agent, through
libusbnet.so: pyusb loads libusb-1.0 with ctypes (dlopen + dlsym on the handle), so it sees
remote devices only if the shim answers for that dlopen. Every answer is checked; the script
exits non-zero with one line per failure."""
import errno
import os
import sys

import usb.backend.libusb1
import usb.core
import usb.util

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)
    return condition


backend = usb.backend.libusb1.get_backend()
check(backend is not None, "pyusb's libusb1 backend loads")

# Enumeration: the two simulated devices, remote, and the hub they hang from.
found = sorted((d.idVendor, d.idProduct) for d in usb.core.find(find_all=True, backend=backend))
print("devices:", " ".join(f"{v:04x}:{p:04x}" for v, p in found))
check((0x1209, 0x0001) in found and (0x1209, 0x0002) in found, "both simulated devices are listed")

dev = usb.core.find(idVendor=0x1209, idProduct=0x0001, backend=backend)
if not check(dev is not None, "find(1209:0001)"):
    sys.exit(1)

# The device descriptor, as docs/DEVICES.md gives it.
check(dev.bcdUSB == 0x0201, f"bcdUSB {dev.bcdUSB:#06x}")
check(dev.bDeviceClass == 0 and dev.bMaxPacketSize0 == 64, "device class 0, bMaxPacketSize0 64")
check(dev.bcdDevice == 0x0100 and dev.bNumConfigurations == 1, "bcdDevice 1.00, one configuration")
check(dev.bus >= 201, f"a remote bus number ({dev.bus})")
check(dev.speed == usb.util.SPEED_HIGH, f"high speed ({dev.speed})")

# Strings, read from the device with GET_DESCRIPTOR(STRING).
strings = (usb.util.get_string(dev, dev.iManufacturer), usb.util.get_string(dev, dev.iProduct),
           usb.util.get_string(dev, dev.iSerialNumber))
print("strings:", strings)
check(strings == ("usbnet", "Loopback", "LB0001"), f"the device's strings {strings}")

# The configuration and its endpoints.
dev.set_configuration()
cfg = dev.get_active_configuration()
check(cfg.bConfigurationValue == 1 and cfg.bMaxPower == 50, "configuration 1, 100 mA")
check(usb.util.get_string(dev, cfg.iConfiguration) == "Loopback", "the configuration's string")
intf = cfg[(0, 0)]
check((intf.bInterfaceClass, intf.bInterfaceSubClass) == (0xFF, 0), "interface 0: vendor class")
check(usb.util.get_string(dev, intf.iInterface) == "Loopback interface", "the interface's string")
endpoints = [(e.bEndpointAddress, usb.util.endpoint_type(e.bmAttributes), e.wMaxPacketSize)
             for e in intf]
bulk, interrupt = usb.util.ENDPOINT_TYPE_BULK, usb.util.ENDPOINT_TYPE_INTR
check(endpoints == [(0x01, bulk, 512), (0x81, bulk, 512), (0x02, bulk, 512), (0x82, bulk, 512),
                    (0x03, interrupt, 64), (0x83, interrupt, 64)], f"endpoints {endpoints}")
usb.util.claim_interface(dev, 0)

# Control transfers: the vendor buffer written and read back; a STALL is EPIPE.
data = os.urandom(300)
check(dev.ctrl_transfer(0x40, 0x01, 0, 0, data) == 300, "WRITE_BUFFER of 300 bytes")
check(bytes(dev.ctrl_transfer(0xC0, 0x02, 0, 0, 4096)) == data, "READ_BUFFER gives them back")
status = dev.ctrl_transfer(0x80, 0x00, 0, 0, 2)  # GET_STATUS(device): bus powered
check(list(status) == [0, 0], f"GET_STATUS {list(status)}")
try:
    dev.ctrl_transfer(0xC0, 0x03, 0, 0, 8)
    check(False, "ALWAYS_STALL stalls")
except usb.core.USBError as e:
    check(e.errno == errno.EPIPE, f"ALWAYS_STALL is EPIPE ({e})")

# Bulk loopback, every byte compared: lengths around the 512-byte packet.
dev.ctrl_transfer(0x40, 0x06, 0, 0)  # RESET_STREAMS
for n in (1, 511, 512, 513, 4096, 65536):
    payload = os.urandom(n)
    check(dev.write(0x01, payload, timeout=5000) == n, f"bulk OUT of {n} bytes")
    back = bytes(dev.read(0x81, n, timeout=5000))
    check(back == payload, f"bulk loopback of {n} bytes comes back unchanged")

# The source endpoint's pattern, byte n of the stream = n % 251.
source = bytes(dev.read(0x82, 4096, timeout=5000))
check(source == bytes(i % 251 for i in range(4096)), "the source's pattern")

# Interrupt loopback, and a timeout on an empty queue.
check(dev.write(0x03, b"interrupt!", timeout=5000) == 10, "interrupt OUT")
check(bytes(dev.read(0x83, 64, timeout=5000)) == b"interrupt!", "interrupt loopback")
try:
    dev.read(0x81, 512, timeout=100)
    check(False, "a read of an empty queue times out")
except usb.core.USBTimeoutError:
    pass
usb.util.release_interface(dev, 0)
usb.util.dispose_resources(dev)

# The mouse: a HID boot mouse, its first report.
mouse = usb.core.find(idVendor=0x1209, idProduct=0x0002, backend=backend)
if check(mouse is not None, "find(1209:0002)"):
    check(usb.util.get_string(mouse, mouse.iProduct) == "Boot Mouse", "the mouse's product string")
    mouse.set_configuration()  # its reports count from the configuration
    m_intf = mouse.get_active_configuration()[(0, 0)]
    check((m_intf.bInterfaceClass, m_intf.bInterfaceSubClass, m_intf.bInterfaceProtocol) ==
          (3, 1, 2), "interface 0: HID boot mouse")
    report = bytes(mouse.read(0x81, 4, timeout=5000))
    check(report == bytes([1, 4, 0, 0]), f"the first report {report.hex()}")
    usb.util.dispose_resources(mouse)

if failures:
    sys.exit(f"pyusb: {len(failures)} failures")
print("pyusb: all checks passed")
