// Writes the golden vectors into a directory as the fuzzer's seed corpus: one file per message
// body, and one with the whole conversation as a stream.
#include <cstdio>
#include <fstream>
#include <string>

#include "hex.h"
#include "wire_vectors.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  using namespace usbnet::wire;
  const std::string dir = argv[1];
  Bytes stream;
  for (const auto& v : test::golden_vectors()) {
    const Bytes frame = test::from_hex(v.hex);
    std::ofstream(dir + "/" + v.name, std::ios::binary)
        .write(reinterpret_cast<const char*>(frame.data()) + kFrameLengthSize,
               static_cast<std::streamsize>(frame.size() - kFrameLengthSize));
    stream.insert(stream.end(), frame.begin(), frame.end());
  }
  std::ofstream(dir + "/conversation", std::ios::binary)
      .write(reinterpret_cast<const char*>(stream.data()),
             static_cast<std::streamsize>(stream.size()));
  return 0;
}
