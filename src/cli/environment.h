// The shim's environment variables, as `usbnet env` prints them. The same text is the
// ENVIRONMENT of the libusbnet(7) man page (help2man reads `usbnet env --help`), and a test
// checks that it names every variable the shim reads and the README's table.
#pragma once

#include <string>

namespace usbnet::cli {

std::string shim_environment_help();

}  // namespace usbnet::cli
