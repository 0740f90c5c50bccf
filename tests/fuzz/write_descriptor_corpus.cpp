// Writes the descriptor fuzzer's seed corpus: the configurations and BOS descriptors of the
// simulated devices, each behind the byte that selects its parser (0: configuration, 1: BOS).
#include <cstdio>
#include <fstream>
#include <string>

#include "agent/sim/descriptor_builder.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  using namespace usbnet::agent::sim;
  const std::string dir = argv[1];
  auto write = [&](const std::string& name, std::uint8_t selector, const Bytes& descriptor) {
    Bytes file{selector};
    file.insert(file.end(), descriptor.begin(), descriptor.end());
    std::ofstream(dir + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(file.data()),
               static_cast<std::streamsize>(file.size()));
  };
  const Bytes hid = {9, 0x21, 0x11, 0x01, 0, 1, 0x22, 0x34, 0};
  const Bytes companion = ss_endpoint_companion(15, 0, 0);
  write("config_hid", 0,
        config_descriptor({1, 0, 0xa0, 50, {{0, 0, 3, 1, 2, 0, hid, {{0x81, 3, 4, 10, {}}}}}}));
  write(
      "config_alternates", 0,
      config_descriptor({1,
                         4,
                         0x80,
                         50,
                         {{0, 0, 0xff, 0, 0, 5, {}, {}},
                          {0, 1, 0xff, 0, 0, 5, {}, {{0x81, 5, 192, 1, {}}, {0x01, 5, 192, 1, {}}}},
                          {1, 0, 0xff, 0, 0, 0, {}, {{0x82, 2, 1024, 0, companion}}}}}));
  write("bos", 1,
        bos_descriptor(
            {usb2_extension_capability(2), superspeed_capability(0, 0x0e, 1, 10, 2047),
             container_id_capability({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})}));
  return 0;
}
