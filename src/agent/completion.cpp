#include "agent/completion.h"

#include <algorithm>

#include "common/log.h"

namespace usbnet::agent {

using wire::UrbStatus;

Completion completion_of(const TransferPtr& t, const std::string& peer) {
  wire::UrbComplete c;
  c.trans_id = t->trans_id;
  c.status = t->status;
  c.actual_length =
      std::min<std::uint32_t>(t->actual_length, static_cast<std::uint32_t>(t->buffer.size()));
  std::shared_ptr<const void> keepalive = t;
  if (!t->iso_lengths.empty()) {
    // Isochronous: per-packet results; IN data travels compact (each packet's actual bytes).
    if (t->iso_results.size() != t->iso_lengths.size()) {
      log::error("{}: backend returned {} iso results for {} packets (URB {})", peer,
                 t->iso_results.size(), t->iso_lengths.size(), t->trans_id);
      t->iso_results.assign(t->iso_lengths.size(), wire::IsoPacketResult{UrbStatus::Error, 0});
    }
    auto compact = std::make_shared<wire::Bytes>();
    std::size_t offset = 0;
    for (std::size_t i = 0; i < t->iso_lengths.size(); ++i) {
      auto& p = t->iso_results[i];
      p.actual_length = std::min(p.actual_length, t->iso_lengths[i]);
      if (t->is_in() && offset + p.actual_length <= t->buffer.size()) {
        compact->insert(compact->end(), t->buffer.begin() + static_cast<std::ptrdiff_t>(offset),
                        t->buffer.begin() + static_cast<std::ptrdiff_t>(offset + p.actual_length));
      } else if (t->is_in()) {
        p.actual_length = 0;
      }
      offset += t->iso_lengths[i];
    }
    c.iso = t->iso_results;
    c.data_len = static_cast<std::uint32_t>(compact->size());
    c.payload = *compact;
    keepalive = compact;
  } else if (t->is_in()) {
    c.data_len = c.actual_length;
    c.payload = t->in_data.size() >= c.actual_length
                    ? t->in_data.first(c.actual_length)
                    : wire::ByteView(t->buffer.data(), c.actual_length);
  }
  return {std::move(c), std::move(keepalive)};
}

}  // namespace usbnet::agent
