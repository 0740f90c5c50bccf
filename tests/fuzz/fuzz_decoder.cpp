// libFuzzer target for the decoder, the security boundary of both sides.
//
// Properties checked on every input, beyond "no crash, no sanitizer report":
//  - a message body that decode() accepts re-encodes to exactly the same bytes (the encoding is
//    canonical, so acceptance means the decoder understood every byte);
//  - the stream decoder, fed the same bytes in pieces, delivers the same messages as when fed
//    whole, and payload pieces pass through the assembler's checks.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "usbnet/wire.h"

using namespace usbnet::wire;

namespace {

struct Collector : MessageSink {
  std::vector<Bytes> frames;
  PieceAssembler assembler{64};
  void on_heartbeat() override { frames.push_back({}); }
  void on_message(Message&& m) override {
    frames.push_back(encode(m));
    if (const auto* submit = std::get_if<UrbSubmit>(&m)) {
      (void)assembler.begin(submit->trans_id, submit->data_len,
                            static_cast<std::uint32_t>(submit->payload.size()));
    } else if (const auto* data = std::get_if<UrbData>(&m)) {
      (void)assembler.accept(*data);
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView input(data, size);

  if (auto message = decode(input)) {
    const Bytes again = encode(*message);
    if (ByteView(again).subspan(kFrameLengthSize).size() != size ||
        !std::equal(again.begin() + kFrameLengthSize, again.end(), data)) {
      std::abort();  // accepted bytes that do not re-encode identically
    }
  }

  Collector whole;
  StreamDecoder whole_decoder;
  const auto whole_error = whole_decoder.feed(input, whole);

  Collector split;
  StreamDecoder split_decoder;
  std::optional<WireError> split_error;
  const std::size_t step = 1 + (size > 0 ? data[0] % 17 : 0);
  for (std::size_t at = 0; at < size && !split_error; at += step) {
    split_error = split_decoder.feed(input.subspan(at, std::min(step, size - at)), split);
  }
  if (whole.frames != split.frames || whole_error != split_error) std::abort();
  return 0;
}
