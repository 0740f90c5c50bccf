// The golden vectors of docs/PROTOCOL.md, one per message kind and a few variants. The same
// bytes appear in the document; wire_vectors_test.cpp checks both ways.
#include "wire_vectors.h"

namespace usbnet::wire::test {

namespace {

ByteView bytes_of(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// The loopback device's descriptor (1209:0001, bcdUSB 2.01, one configuration).
constexpr std::uint8_t kDeviceDescriptor[] = {0x12, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x40, 0x09,
                                              0x12, 0x01, 0x00, 0x00, 0x01, 0x01, 0x02, 0x03, 0x01};
// A configuration with one vendor interface and one bulk IN endpoint.
constexpr std::uint8_t kConfig[] = {9, 2,    25, 0, 1, 1, 0, 0x80, 50, 9,    4,    0, 0,
                                    1, 0xff, 0,  0, 0, 7, 5, 0x81, 2,  0x00, 0x02, 0};
constexpr std::uint8_t kMouseReport[] = {0x01, 0x04, 0x00, 0x00};
constexpr std::uint8_t kIsoData[] = {0x00, 0x01, 0x02, 0x03};
constexpr std::uint8_t kPiece[] = {0xde, 0xad, 0xbe, 0xef};
// A pairing proof (its bytes are those of a vector, not a real HMAC): 00 01 ... 1f.
const Bytes kPairingProof = [] {
  Bytes proof(kPairingProofLength);
  for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = static_cast<std::uint8_t>(i);
  return proof;
}();

DeviceInfo sample_device(std::uint32_t device_id) {
  DeviceInfo d;
  d.device_id = device_id;
  d.bus_number = 1;
  d.device_address = 2;
  d.speed = 3;
  d.active_config = 1;
  d.port_numbers = {1};
  std::copy(std::begin(kDeviceDescriptor), std::end(kDeviceDescriptor),
            d.device_descriptor.begin());
  d.configs = {Bytes(std::begin(kConfig), std::end(kConfig))};
  d.strings = {{0, 0, {4, 3, 0x09, 0x04}}, {1, 0x0409, {8, 3, 'u', 0, 's', 0, 'b', 0}}};
  return d;
}

}  // namespace

const std::vector<GoldenVector>& golden_vectors() {
  static const std::vector<GoldenVector> vectors = {
      {"hello", Hello{1, 1, kCapIso | kCapHotplug, 5000, AuthMethod::None, {}, "shim"},
       "20000000004253550100000001000000010000000300000088130000000400007368696d"},
      {"hello_pair",
       Hello{1, 1, kCapIso | kCapHotplug | kCapKernelDriver, 5000, AuthMethod::Pair, kPairingProof,
             "usbnet pair"},
       "47000000004253550100000001000000010000000700000088130000020b2000000102030405060708090a0b0c0"
       "d0e0f101112131415161718191a1b1c1d1e1f7573626e65742070616972"},
      {"error", Error{7, error_code::kBusy, "interface busy"},
       "20000000004253550200000007000000faffffff0e00696e746572666163652062757379"},
      {"reply", Reply{4, 1}, "1000000000425355030000000400000001000000"},
      {"list_devices", ListDevices{2}, "0c000000004253551000000002000000"},
      {"device_list", DeviceList{2, {sample_device(1)}},
       "6b00000000425355110000000200000001000000010000000000000001020301010100000000000012010102000"
       "000400912010000010102030101000000020019000902190001010080320904000001ff00000007058102000200"
       "0000000404030904010904080803750073006200"},
      {"device_arrived", DeviceArrived{sample_device(5)},
       "6700000000425355120000000000000005000000000000000102030101010000000000001201010200000040091"
       "2010000010102030101000000020019000902190001010080320904000001ff0000000705810200020000000004"
       "04030904010904080803750073006200"},
      {"device_left", DeviceLeft{5}, "1000000000425355130000000000000005000000"},
      {"open", Open{4, 1}, "1000000000425355200000000400000001000000"},
      {"close", Close{9, 1}, "1000000000425355210000000900000001000000"},
      {"set_configuration", SetConfiguration{5, 1, -1},
       "1400000000425355220000000500000001000000ffffffff"},
      {"get_configuration", GetConfiguration{6, 1}, "1000000000425355230000000600000001000000"},
      {"claim_interface", ClaimInterface{7, 1, 0}, "110000000042535524000000070000000100000000"},
      {"release_interface", ReleaseInterface{8, 1, 0},
       "110000000042535525000000080000000100000000"},
      {"set_alt_setting", SetAltSetting{10, 1, 0, 1},
       "1200000000425355260000000a000000010000000001"},
      {"clear_halt", ClearHalt{11, 1, 0x81}, "1100000000425355270000000b0000000100000081"},
      {"reset_device", ResetDevice{12, 1}, "1000000000425355280000000c00000001000000"},
      {"kernel_driver", KernelDriver{13, 1, KernelDriverOp::Detach, 0},
       "1200000000425355290000000d000000010000000100"},
      {"urb_submit_control_in",
       UrbSubmit{1000,
                 UrbType::Control,
                 0x00,
                 0,
                 {0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00},
                 18,
                 1,
                 1000,
                 {},
                 {}},
       "2c0000000042535530000000e8030000000000000000080012000000800600010000120001000000e8030000000"
       "00000"},
      {"urb_submit_interrupt_in", UrbSubmit{1001, UrbType::Interrupt, 0x81, 0, {}, 4, 1, 0, {}, {}},
       "2c0000000042535530000000e903000002810000000000000400000000000000000000000100000000000000000"
       "00000"},
      {"urb_submit_bulk_out",
       UrbSubmit{
           1002, UrbType::Bulk, 0x01, kFlagAddZeroPacket, {}, 4, 1, 5000, {}, bytes_of("data")},
       "300000000042535530000000ea03000001010800000000000400000000000000000000000100000088130000000"
       "0000064617461"},
      {"urb_submit_iso_in", UrbSubmit{1003, UrbType::Iso, 0x81, 0, {}, 16, 1, 0, {8, 8}, {}},
       "340000000042535530000000eb03000003810000000000001000000000000000000000000100000000000000020"
       "000000800000008000000"},
      {"urb_complete_control_in",
       UrbComplete{1000, UrbStatus::Completed, 18, 18, {}, kDeviceDescriptor},
       "2e0000000042535531000000e803000000000000120000001200000000000000120101020000004009120100000"
       "101020301"},
      {"urb_complete_interrupt_in", UrbComplete{1001, UrbStatus::Completed, 4, 4, {}, kMouseReport},
       "200000000042535531000000e90300000000000004000000040000000000000001040000"},
      {"urb_complete_stall", UrbComplete{1002, UrbStatus::Stall, 0, 0, {}, {}},
       "1c0000000042535531000000ea03000004000000000000000000000000000000"},
      {"urb_complete_iso_in",
       UrbComplete{1003,
                   UrbStatus::Completed,
                   0,
                   4,
                   {{UrbStatus::Completed, 4}, {UrbStatus::Error, 0}},
                   kIsoData},
       "300000000042535531000000eb03000000000000000000000400000002000000000000000400000001000000000"
       "0000000010203"},
      {"urb_data", UrbData{1004, 65536, kPiece},
       "140000000042535532000000ec03000000000100deadbeef"},
      {"urb_cancel", UrbCancel{1002}, "0c0000000042535533000000ea030000"},
  };
  return vectors;
}

const char* const kHeartbeatHex = "00000000";

}  // namespace usbnet::wire::test
