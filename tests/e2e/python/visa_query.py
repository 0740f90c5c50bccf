# pyvisa with the pyvisa-py backend (pyusb under it), as a lab script uses an instrument: list
# the USB resources, open the simulated USBTMC instrument, query it, and read its error queue.
# Prints one line per step.
import pyvisa

rm = pyvisa.ResourceManager("@py")
print("resources:", " ".join(rm.list_resources("USB?*")))
inst = rm.open_resource("USB0::0x1209::0x0006::TMC0001::INSTR")
inst.read_termination = "\n"
inst.write_termination = "\n"
inst.timeout = 5000
print("idn:", inst.query("*IDN?"))
inst.write("VOLT 2.5;:OUTP ON")
print("measure:", inst.query("MEAS:VOLT:DC?"))
inst.write("FOO:BAR 3")
print("error:", inst.query("SYST:ERR?"))
# A read with no query before it times out (pyvisa-py then aborts the Bulk-IN transfer).
inst.timeout = 300
try:
    inst.read()
    print("read without a query: answered")
except pyvisa.errors.VisaIOError as e:
    print("read without a query:", e.abbreviation)
inst.timeout = 5000
print("error:", inst.query("SYST:ERR?"))
print("error:", inst.query("SYST:ERR?"))
inst.close()
rm.close()
