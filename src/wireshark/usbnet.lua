-- Wireshark dissector for usbnet's wire protocol, version 1 (docs/PROTOCOL.md): the frames
-- between libusbnet.so and usbnet-agent over TCP, port 3241 by default.
--
-- Every frame is a 4-byte little-endian length and one message (length 0: a heartbeat). A
-- message starts with the magic 0x55534200, its type and its id (the trans_id of URB messages);
-- every message type and field of the protocol is shown, URB headers with their setup packet,
-- payload pieces, device records with their descriptors and strings, errors with their code.
-- A frame that breaks the protocol's rules (bad magic, unknown type, a field that runs past the
-- frame, bytes after the last field, a length over the 2 MiB cap, ...) is shown as far as it
-- can be read and marked with an expert error named like the fault in the protocol's section
-- 9; the dissector goes on with the next frame.
--
-- Installed as a global Lua plugin (the package puts it in Wireshark's "Global Lua Plugins"
-- folder, see `tshark -G folders`); it decodes TCP port 3241, any other port through
-- "Decode As..." (USBNET), and finds usbnet on other ports by itself (a heuristic that looks
-- for the magic in the first frame of a segment).

local usbnet = Proto("usbnet", "usbnet URB protocol")

local MAGIC = 0x55534200
local MAX_FRAME = 2 * 1024 * 1024
local DEFAULT_PORT = 3241

local message_types = {
  [0x0001] = "HELLO", [0x0002] = "ERROR", [0x0003] = "REPLY",
  [0x0010] = "LIST_DEVICES", [0x0011] = "DEVICE_LIST", [0x0012] = "DEVICE_ARRIVED",
  [0x0013] = "DEVICE_LEFT",
  [0x0020] = "OPEN", [0x0021] = "CLOSE", [0x0022] = "SET_CONFIGURATION",
  [0x0023] = "GET_CONFIGURATION", [0x0024] = "CLAIM_INTERFACE", [0x0025] = "RELEASE_INTERFACE",
  [0x0026] = "SET_ALT_SETTING", [0x0027] = "CLEAR_HALT", [0x0028] = "RESET_DEVICE",
  [0x0029] = "KERNEL_DRIVER",
  [0x0030] = "URB_SUBMIT", [0x0031] = "URB_COMPLETE", [0x0032] = "URB_DATA",
  [0x0033] = "URB_CANCEL",
}
local urb_types = { [0] = "CTRL", [1] = "BULK", [2] = "INT", [3] = "ISO" }
local urb_statuses = {
  [0] = "COMPLETED", [1] = "ERROR", [2] = "TIMED_OUT", [3] = "CANCELLED", [4] = "STALL",
  [5] = "NO_DEVICE", [6] = "OVERFLOW",
}
local error_codes = {
  [-1] = "LIBUSB_ERROR_IO", [-2] = "LIBUSB_ERROR_INVALID_PARAM", [-3] = "LIBUSB_ERROR_ACCESS",
  [-4] = "LIBUSB_ERROR_NO_DEVICE", [-5] = "LIBUSB_ERROR_NOT_FOUND", [-6] = "LIBUSB_ERROR_BUSY",
  [-7] = "LIBUSB_ERROR_TIMEOUT", [-8] = "LIBUSB_ERROR_OVERFLOW", [-9] = "LIBUSB_ERROR_PIPE",
  [-10] = "LIBUSB_ERROR_INTERRUPTED", [-11] = "LIBUSB_ERROR_NO_MEM",
  [-12] = "LIBUSB_ERROR_NOT_SUPPORTED", [-99] = "LIBUSB_ERROR_OTHER",
}
local speeds = { [0] = "unknown", [1] = "low", [2] = "full", [3] = "high", [4] = "super",
                 [5] = "super plus" }
local auth_methods = { [0] = "none", [1] = "token", [2] = "pair" }
local kernel_driver_ops = { [0] = "query", [1] = "detach", [2] = "attach" }

local f = {
  length = ProtoField.uint32("usbnet.length", "Frame length", base.DEC),
  heartbeat = ProtoField.none("usbnet.heartbeat", "Heartbeat"),
  magic = ProtoField.uint32("usbnet.magic", "Magic", base.HEX),
  type = ProtoField.uint16("usbnet.type", "Type", base.HEX, message_types),
  reserved = ProtoField.bytes("usbnet.reserved", "Reserved"),
  id = ProtoField.uint32("usbnet.id", "Id", base.DEC),
  trans_id = ProtoField.uint32("usbnet.trans_id", "trans_id", base.DEC),
  request_id = ProtoField.uint32("usbnet.request_id", "Request id", base.DEC),
  -- HELLO
  version = ProtoField.uint16("usbnet.hello.version", "Version", base.DEC),
  capabilities = ProtoField.uint32("usbnet.hello.capabilities", "Capabilities", base.HEX),
  cap_iso = ProtoField.bool("usbnet.hello.capabilities.iso", "ISO", 32, nil, 0x1),
  cap_hotplug = ProtoField.bool("usbnet.hello.capabilities.hotplug", "HOTPLUG", 32, nil, 0x2),
  cap_kernel_driver = ProtoField.bool("usbnet.hello.capabilities.kernel_driver",
                                      "KERNEL_DRIVER", 32, nil, 0x4),
  heartbeat_ms = ProtoField.uint32("usbnet.hello.heartbeat_ms", "Heartbeat (ms)", base.DEC),
  auth_method = ProtoField.uint8("usbnet.hello.auth_method", "Authentication", base.DEC,
                                 auth_methods),
  name_length = ProtoField.uint8("usbnet.hello.name_length", "Name length", base.DEC),
  auth_length = ProtoField.uint16("usbnet.hello.auth_length", "Authentication length", base.DEC),
  auth = ProtoField.bytes("usbnet.hello.auth", "Authentication data"),
  name = ProtoField.string("usbnet.hello.name", "Name"),
  -- ERROR, REPLY
  error_code = ProtoField.int32("usbnet.error.code", "Code", base.DEC, error_codes),
  text_length = ProtoField.uint16("usbnet.error.text_length", "Text length", base.DEC),
  text = ProtoField.string("usbnet.error.text", "Text"),
  value = ProtoField.uint32("usbnet.reply.value", "Value", base.DEC),
  -- devices
  count = ProtoField.uint32("usbnet.devices.count", "Devices", base.DEC),
  device = ProtoField.none("usbnet.device", "Device"),
  device_id = ProtoField.uint32("usbnet.device_id", "Device id", base.DEC),
  parent_id = ProtoField.uint32("usbnet.device.parent_id", "Parent id", base.DEC),
  bus_number = ProtoField.uint8("usbnet.device.bus", "Bus", base.DEC),
  device_address = ProtoField.uint8("usbnet.device.address", "Address", base.DEC),
  speed = ProtoField.uint8("usbnet.device.speed", "Speed", base.DEC, speeds),
  active_config = ProtoField.uint8("usbnet.device.active_config", "Active configuration",
                                   base.DEC),
  port_count = ProtoField.uint8("usbnet.device.port_count", "Port count", base.DEC),
  port_numbers = ProtoField.bytes("usbnet.device.ports", "Port numbers", base.SPACE),
  device_descriptor = ProtoField.bytes("usbnet.device.descriptor", "Device descriptor"),
  id_vendor = ProtoField.uint16("usbnet.device.idVendor", "idVendor", base.HEX),
  id_product = ProtoField.uint16("usbnet.device.idProduct", "idProduct", base.HEX),
  device_class = ProtoField.uint8("usbnet.device.bDeviceClass", "bDeviceClass", base.HEX),
  num_configs = ProtoField.uint8("usbnet.device.num_configs", "Configurations", base.DEC),
  bos_length = ProtoField.uint16("usbnet.device.bos_length", "BOS length", base.DEC),
  string_count = ProtoField.uint16("usbnet.device.string_count", "Strings", base.DEC),
  config_length = ProtoField.uint16("usbnet.device.config_length", "Configuration length",
                                    base.DEC),
  config = ProtoField.bytes("usbnet.device.config", "Configuration descriptor"),
  bos = ProtoField.bytes("usbnet.device.bos", "BOS descriptor"),
  string = ProtoField.none("usbnet.device.string", "String descriptor"),
  string_index = ProtoField.uint8("usbnet.device.string.index", "Index", base.DEC),
  string_langid = ProtoField.uint16("usbnet.device.string.langid", "Language id", base.HEX),
  string_length = ProtoField.uint8("usbnet.device.string.length", "Length", base.DEC),
  string_text = ProtoField.string("usbnet.device.string.text", "Text"),
  string_raw = ProtoField.bytes("usbnet.device.string.raw", "Descriptor"),
  -- device requests
  handle = ProtoField.uint32("usbnet.handle", "Handle", base.DEC),
  configuration = ProtoField.int32("usbnet.configuration", "Configuration", base.DEC),
  interface = ProtoField.uint8("usbnet.interface", "Interface", base.DEC),
  alt_setting = ProtoField.uint8("usbnet.alt_setting", "Alternate setting", base.DEC),
  endpoint = ProtoField.uint8("usbnet.endpoint", "Endpoint", base.HEX),
  kernel_driver_op = ProtoField.uint8("usbnet.kernel_driver.op", "Operation", base.DEC,
                                      kernel_driver_ops),
  -- URBs
  urb_type = ProtoField.uint8("usbnet.urb.type", "URB type", base.DEC, urb_types),
  flags = ProtoField.uint32("usbnet.urb.flags", "Transfer flags", base.HEX),
  flag_short_not_ok = ProtoField.bool("usbnet.urb.flags.short_not_ok", "SHORT_NOT_OK", 32, nil,
                                      0x1),
  flag_free_buffer = ProtoField.bool("usbnet.urb.flags.free_buffer", "FREE_BUFFER", 32, nil, 0x2),
  flag_free_transfer = ProtoField.bool("usbnet.urb.flags.free_transfer", "FREE_TRANSFER", 32, nil,
                                       0x4),
  flag_zero_packet = ProtoField.bool("usbnet.urb.flags.add_zero_packet", "ADD_ZERO_PACKET", 32,
                                     nil, 0x8),
  setup_len = ProtoField.uint16("usbnet.urb.setup_len", "Setup length", base.DEC),
  data_len = ProtoField.uint32("usbnet.urb.data_len", "Data length", base.DEC),
  setup = ProtoField.bytes("usbnet.urb.setup", "Setup packet"),
  bm_request_type = ProtoField.uint8("usbnet.urb.setup.bmRequestType", "bmRequestType", base.HEX),
  b_request = ProtoField.uint8("usbnet.urb.setup.bRequest", "bRequest", base.HEX),
  w_value = ProtoField.uint16("usbnet.urb.setup.wValue", "wValue", base.HEX),
  w_index = ProtoField.uint16("usbnet.urb.setup.wIndex", "wIndex", base.HEX),
  w_length = ProtoField.uint16("usbnet.urb.setup.wLength", "wLength", base.DEC),
  timeout_ms = ProtoField.uint32("usbnet.urb.timeout_ms", "Timeout (ms)", base.DEC),
  iso_packets = ProtoField.uint16("usbnet.urb.iso_packets", "Iso packets", base.DEC),
  iso_length = ProtoField.uint32("usbnet.urb.iso.length", "Iso packet length", base.DEC),
  status = ProtoField.uint32("usbnet.urb.status", "Status", base.DEC, urb_statuses),
  actual_length = ProtoField.uint32("usbnet.urb.actual_length", "Actual length", base.DEC),
  iso_result = ProtoField.none("usbnet.urb.iso.result", "Iso packet"),
  iso_status = ProtoField.uint32("usbnet.urb.iso.status", "Status", base.DEC, urb_statuses),
  iso_actual = ProtoField.uint32("usbnet.urb.iso.actual_length", "Actual length", base.DEC),
  offset = ProtoField.uint32("usbnet.urb.piece_offset", "Piece offset", base.DEC),
  payload = ProtoField.bytes("usbnet.payload", "Payload"),
}
usbnet.fields = f

local e = {
  malformed = ProtoExpert.new("usbnet.malformed", "Malformed usbnet frame",
                              expert.group.MALFORMED, expert.severity.ERROR),
  protocol_error = ProtoExpert.new("usbnet.protocol_error", "A side reports a protocol error",
                                   expert.group.RESPONSE_CODE, expert.severity.WARN),
  urb_error = ProtoExpert.new("usbnet.urb_error", "URB did not complete",
                              expert.group.RESPONSE_CODE, expert.severity.NOTE),
}
usbnet.experts = e

-- Reads the fields of one message; every read checks that the field is inside the message, and
-- the first one that is not marks the frame `truncated` and stops the dissection (as the
-- protocol's decoder stops at its first fault).
local Reader = {}
Reader.__index = Reader

local Truncated = {}

local function reader(tvb, offset, finish, tree)
  return setmetatable({ tvb = tvb, at = offset, finish = finish, tree = tree }, Reader)
end

function Reader:remaining() return self.finish - self.at end

function Reader:range(n)
  if n > self:remaining() then
    self.tree:add_proto_expert_info(e.malformed, "truncated: the message ends before a field " ..
                                    "it declares")
    error(Truncated)
  end
  local r = self.tvb(self.at, n)
  self.at = self.at + n
  return r
end

-- Adds an unsigned little-endian field of `n` bytes and returns its value.
function Reader:uint(field, n, tree)
  local r = self:range(n)
  ;(tree or self.tree):add_le(field, r)
  return r:le_uint()
end

function Reader:int32(field, tree)
  local r = self:range(4)
  ;(tree or self.tree):add_le(field, r)
  return r:le_int()
end

function Reader:reserved(n, tree)
  local r = self:range(n)
  local item = (tree or self.tree):add(f.reserved, r)
  for i = 0, n - 1 do
    if r(i, 1):uint() ~= 0 then
      item:add_proto_expert_info(e.malformed, "reserved not zero")
      break
    end
  end
end

function Reader:bytes(field, n, tree)
  if n == 0 then return nil end
  local r = self:range(n)
  ;(tree or self.tree):add(field, r)
  return r
end

function Reader:done()
  if self:remaining() > 0 then
    self.tree:add_proto_expert_info(e.malformed, "length mismatch: " .. self:remaining() ..
                                    " bytes after the last field")
  end
end

local function hex(value, digits)
  return string.format("0x%0" .. (digits or 2) .. "x", value)
end

local function malformed(tree, text)
  tree:add_proto_expert_info(e.malformed, text)
end

-- ---- message bodies ------------------------------------------------------------------------

local function dissect_hello(r, info)
  local version = r:uint(f.version, 2)
  if version ~= 1 then
    malformed(r.tree, "unsupported version " .. version)
    return
  end
  r:reserved(2)
  local caps_range = r:range(4)
  local caps = r.tree:add_le(f.capabilities, caps_range)
  caps:add_le(f.cap_iso, caps_range)
  caps:add_le(f.cap_hotplug, caps_range)
  caps:add_le(f.cap_kernel_driver, caps_range)
  if bit.band(caps_range:le_uint(), bit.bnot(0x7)) ~= 0 then
    caps:add_proto_expert_info(e.malformed, "unknown capability")
  end
  r:uint(f.heartbeat_ms, 4)
  local method = r:uint(f.auth_method, 1)
  if method > 2 then malformed(r.tree, "bad auth method") end
  local name_length = r:uint(f.name_length, 1)
  local auth_length = r:uint(f.auth_length, 2)
  if auth_length > 4096 then malformed(r.tree, "auth too long") end
  r:bytes(f.auth, auth_length)
  if name_length > 0 then
    local name = r:range(name_length)
    r.tree:add(f.name, name)
    info[#info + 1] = '"' .. name:string(ENC_UTF_8) .. '"'
  end
end

local function dissect_error(r, info)
  local code = r:int32(f.error_code)
  if not error_codes[code] then malformed(r.tree, "bad error code") end
  local length = r:uint(f.text_length, 2)
  if length > 1024 then malformed(r.tree, "text too long") end
  local text = ""
  if length > 0 then
    local range = r:range(length)
    r.tree:add(f.text, range)
    text = range:string(ENC_UTF_8)
  end
  info[#info + 1] = (error_codes[code] or tostring(code)) .. ' "' .. text .. '"'
  if text:find("^protocol error") then
    r.tree:add_proto_expert_info(e.protocol_error, text)
  end
end

-- The string descriptor's UTF-16LE text (after bLength and bDescriptorType).
local function string_text(range)
  if range:len() < 2 then return "" end
  local ok, text = pcall(function() return range(2):le_ustring() end)
  return ok and text or ""
end

local function dissect_device_record(r, parent)
  local start = r.at
  local item = parent:add(f.device, r.tvb(r.at, 0))
  local saved = r.tree
  r.tree = item
  local device_id = r:uint(f.device_id, 4)
  r:uint(f.parent_id, 4)
  local bus = r:uint(f.bus_number, 1)
  local address = r:uint(f.device_address, 1)
  local speed = r:uint(f.speed, 1)
  if speed > 5 then malformed(item, "bad speed") end
  r:uint(f.active_config, 1)
  local ports = r:uint(f.port_count, 1)
  if ports > 7 then malformed(item, "too many ports") end
  local port_range = r:range(7)
  item:add(f.port_numbers, port_range)
  for i = math.min(ports, 7), 6 do
    if port_range(i, 1):uint() ~= 0 then
      malformed(item, "reserved not zero: a port number past port_count")
      break
    end
  end
  local descriptor = r:range(18)
  local desc_item = item:add(f.device_descriptor, descriptor)
  desc_item:add(f.device_class, descriptor(4, 1))
  desc_item:add_le(f.id_vendor, descriptor(8, 2))
  desc_item:add_le(f.id_product, descriptor(10, 2))
  local num_configs = r:uint(f.num_configs, 1)
  r:reserved(1)
  local bos_length = r:uint(f.bos_length, 2)
  local strings = r:uint(f.string_count, 2)
  if strings > 1024 then malformed(item, "too many strings") end
  for _ = 1, num_configs do
    local length = r:uint(f.config_length, 2)
    r:bytes(f.config, length)
  end
  r:bytes(f.bos, bos_length)
  for _ = 1, strings do
    local s_start = r.at
    local s_item = item:add(f.string, r.tvb(r.at, 0))
    local index = r:uint(f.string_index, 1, s_item)
    r:uint(f.string_langid, 2, s_item)
    local length = r:uint(f.string_length, 1, s_item)
    if length > 0 then
      local raw = r:range(length)
      s_item:add(f.string_raw, raw)
      local text = string_text(raw)
      if index ~= 0 then s_item:add(f.string_text, raw, text) end
      s_item:append_text(" " .. index .. (index ~= 0 and (': "' .. text .. '"') or ": languages"))
    end
    s_item:set_len(r.at - s_start)
  end
  item:set_len(r.at - start)
  item:append_text(string.format(" %d: %04x:%04x, bus %d address %d", device_id,
                                 descriptor(8, 2):le_uint(), descriptor(10, 2):le_uint(), bus,
                                 address))
  r.tree = saved
  return device_id
end

local function dissect_device_list(r, info)
  local count = r:uint(f.count, 4)
  if count > 1024 then
    malformed(r.tree, "too many devices")
    return
  end
  for _ = 1, count do dissect_device_record(r, r.tree) end
  info[#info + 1] = count .. (count == 1 and " device" or " devices")
end

local function dissect_setup(r)
  local range = r:range(8)
  local item = r.tree:add(f.setup, range)
  item:add(f.bm_request_type, range(0, 1))
  item:add(f.b_request, range(1, 1))
  item:add_le(f.w_value, range(2, 2))
  item:add_le(f.w_index, range(4, 2))
  item:add_le(f.w_length, range(6, 2))
  return range
end

local function dissect_flags(r)
  local range = r:range(4)
  local item = r.tree:add_le(f.flags, range)
  item:add_le(f.flag_short_not_ok, range)
  item:add_le(f.flag_free_buffer, range)
  item:add_le(f.flag_free_transfer, range)
  item:add_le(f.flag_zero_packet, range)
  if bit.band(range:le_uint(), bit.bnot(0xf)) ~= 0 then
    item:add_proto_expert_info(e.malformed, "bad flags")
  end
end

local function dissect_payload(r)
  local n = r:remaining()
  if n > 0 then r:bytes(f.payload, n) end
  return n
end

local function dissect_urb_submit(r, info)
  local urb_type = r:uint(f.urb_type, 1)
  if urb_type > 3 then malformed(r.tree, "bad urb type") end
  local endpoint = r:uint(f.endpoint, 1)
  dissect_flags(r)
  local setup_len = r:uint(f.setup_len, 2)
  if (urb_type == 0 and setup_len ~= 8) or (urb_type ~= 0 and setup_len ~= 0) then
    malformed(r.tree, "bad setup length")
  end
  local data_len = r:uint(f.data_len, 4)
  if data_len > 64 * 1024 * 1024 then malformed(r.tree, "transfer too large") end
  local setup = dissect_setup(r)
  r:uint(f.handle, 4)
  r:uint(f.timeout_ms, 4)
  local packets = r:uint(f.iso_packets, 2)
  r:reserved(2)
  if (urb_type == 3) ~= (packets > 0) or packets > 4096 then
    malformed(r.tree, "bad iso packets")
  end
  for _ = 1, packets do r:uint(f.iso_length, 4) end
  local payload = dissect_payload(r)
  local text = (urb_types[urb_type] or "?") .. " ep " .. hex(endpoint) .. " len " .. data_len
  if urb_type == 0 then
    text = text .. string.format(" setup %02x %02x %04x %04x %d", setup(0, 1):uint(),
                                 setup(1, 1):uint(), setup(2, 2):le_uint(),
                                 setup(4, 2):le_uint(), setup(6, 2):le_uint())
  end
  if payload > 0 then text = text .. " (" .. payload .. " bytes of data)" end
  info[#info + 1] = text
end

local function dissect_urb_complete(r, info)
  local status = r:uint(f.status, 4)
  if status > 6 then malformed(r.tree, "bad status") end
  local actual = r:uint(f.actual_length, 4)
  r:uint(f.data_len, 4)
  local packets = r:uint(f.iso_packets, 2)
  r:reserved(2)
  for i = 1, packets do
    local item = r.tree:add(f.iso_result, r.tvb(r.at, math.min(8, r:remaining())))
    item:append_text(" " .. (i - 1))
    local packet_status = r:uint(f.iso_status, 4, item)
    r:uint(f.iso_actual, 4, item)
    if packet_status > 6 then item:add_proto_expert_info(e.malformed, "bad status") end
  end
  dissect_payload(r)
  info[#info + 1] = (urb_statuses[status] or tostring(status)) .. " actual " .. actual
  if status ~= 0 then
    r.tree:add_proto_expert_info(e.urb_error, "URB ended with " ..
                                 (urb_statuses[status] or tostring(status)))
  end
end

local function dissect_urb_data(r, info)
  local offset = r:uint(f.offset, 4)
  local n = dissect_payload(r)
  info[#info + 1] = "piece at " .. offset .. ", " .. n .. " bytes"
end

-- Device requests: handle first, then their own fields.
local request_bodies = {
  [0x0021] = {},
  [0x0022] = { "configuration" },
  [0x0023] = {},
  [0x0024] = { "interface" },
  [0x0025] = { "interface" },
  [0x0026] = { "interface", "alt_setting" },
  [0x0027] = { "endpoint" },
  [0x0028] = {},
  [0x0029] = { "kernel_driver_op", "interface" },
}

local function dissect_device_request(r, info, type)
  local handle = r:uint(f.handle, 4)
  local parts = { "handle " .. handle }
  for _, name in ipairs(request_bodies[type]) do
    if name == "configuration" then
      local value = r:int32(f.configuration)
      if value < -1 or value > 255 then malformed(r.tree, "bad configuration") end
      parts[#parts + 1] = "configuration " .. value
    else
      local value = r:uint(f[name], 1)
      if name == "kernel_driver_op" then
        if value > 2 then malformed(r.tree, "bad kernel driver op") end
        parts[#parts + 1] = kernel_driver_ops[value] or tostring(value)
      elseif name == "endpoint" then
        parts[#parts + 1] = "endpoint " .. hex(value)
      else
        parts[#parts + 1] = name:gsub("_", " ") .. " " .. value
      end
    end
  end
  info[#info + 1] = table.concat(parts, ", ")
end

local bodies = {
  [0x0001] = dissect_hello,
  [0x0002] = dissect_error,
  [0x0003] = function(r, info) info[#info + 1] = "value " .. r:uint(f.value, 4) end,
  [0x0010] = function() end,
  [0x0011] = dissect_device_list,
  [0x0012] = function(r, info) info[#info + 1] = "device " .. dissect_device_record(r, r.tree) end,
  [0x0013] = function(r, info) info[#info + 1] = "device " .. r:uint(f.device_id, 4) end,
  [0x0020] = function(r, info) info[#info + 1] = "device " .. r:uint(f.device_id, 4) end,
  [0x0030] = dissect_urb_submit,
  [0x0031] = dissect_urb_complete,
  [0x0032] = dissect_urb_data,
  [0x0033] = function() end,
}
local urb_messages = { [0x0030] = true, [0x0031] = true, [0x0032] = true, [0x0033] = true }
local event_messages = { [0x0012] = true, [0x0013] = true }

-- ---- frames --------------------------------------------------------------------------------

-- One frame at `offset` (its length prefix known to be there, the message whole or cut at the
-- end of the data): returns the text for the Info column.
local function dissect_frame(tvb, pinfo, tree, offset, total)
  local length = tvb(offset, 4):le_uint()
  local item = tree:add(usbnet, tvb(offset, total))
  item:add_le(f.length, tvb(offset, 4))
  if length == 0 then
    item:add(f.heartbeat, tvb(offset, 4))
    item:append_text(", heartbeat")
    return "heartbeat"
  end
  if length > MAX_FRAME then
    item:add_proto_expert_info(e.malformed, "frame too large: " .. length ..
                               " bytes, the cap is 2 MiB")
    return "frame too large"
  end
  local r = reader(tvb, offset + 4, offset + total, item)
  local info = {}
  local name
  local ok, err = pcall(function()
    local magic_range = r:range(4)
    item:add_le(f.magic, magic_range)
    if magic_range:le_uint() ~= MAGIC then
      malformed(item, "bad magic")
      name = "bad magic"
      return
    end
    local type = r:uint(f.type, 2)
    r:reserved(2)
    local id_range = r:range(4)
    local id = id_range:le_uint()
    item:add_le(f.id, id_range)
    name = message_types[type]
    if not name then
      malformed(item, string.format("unknown type 0x%04x", type))
      name = string.format("type 0x%04x", type)
      return
    end
    if urb_messages[type] then
      item:add_le(f.trans_id, id_range)
      info[#info + 1] = "trans_id=" .. id
    elseif event_messages[type] then
      if id ~= 0 then malformed(item, "reserved not zero: an event's id") end
    else
      item:add_le(f.request_id, id_range)
      info[#info + 1] = "id=" .. id
    end
    local body = bodies[type] or function(r2, info2) dissect_device_request(r2, info2, type) end
    body(r, info)
    r:done()
  end)
  if not ok and err ~= Truncated then
    malformed(item, "the dissector could not read this frame: " .. tostring(err))
  end
  local text = (name or "?") .. (#info > 0 and (" " .. table.concat(info, " ")) or "")
  item:append_text(", " .. text)
  return text
end

-- The length of the frame that starts at `offset` (for TCP reassembly): its prefix and its
-- message; a length over the cap cannot be believed, so the frame ends with the data at hand.
local function frame_length(tvb, pinfo, offset)
  local length = tvb(offset, 4):le_uint()
  if length > MAX_FRAME then return tvb:len() - offset end
  return 4 + length
end

-- Frames dissected in the current packet (a segment may carry several: the Info column lists
-- them all).
local frames_in_packet = 0

local function dissect_pdu(tvb, pinfo, tree)
  pinfo.cols.protocol = "usbnet"
  local total = tvb:len()
  local text = dissect_frame(tvb, pinfo, tree, 0, total)
  if frames_in_packet == 0 then
    pinfo.cols.info:set(text)
  else
    pinfo.cols.info:append("; " .. text)
  end
  frames_in_packet = frames_in_packet + 1
  return total
end

function usbnet.dissector(tvb, pinfo, tree)
  frames_in_packet = 0
  return dissect_tcp_pdus(tvb, tree, 4, frame_length, dissect_pdu, true)
end

-- Another port: a segment that starts with a frame whose message has the magic (or a heartbeat
-- followed by one).
local function heuristic(tvb, pinfo, tree)
  if tvb:len() < 8 then return false end
  local offset = 0
  if tvb(0, 4):le_uint() == 0 then offset = 4 end
  if tvb:len() < offset + 8 then return false end
  if tvb(offset + 4, 4):le_uint() ~= MAGIC then return false end
  if tvb(offset, 4):le_uint() > MAX_FRAME then return false end
  pinfo.conversation = usbnet
  usbnet.dissector(tvb, pinfo, tree)
  return true
end

DissectorTable.get("tcp.port"):add(DEFAULT_PORT, usbnet)
usbnet:register_heuristic("tcp", heuristic)
