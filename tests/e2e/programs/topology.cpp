// A plain libusb program that walks the USB tree of the devices on buses 201 and up (the remote
// ones under the shim), as a program that looks for a device's hub would: every device's
// libusb_get_parent chain must end at a root hub (whose parent is NULL), each parent a hub of
// the device list, on the child's bus, with the child's port path one port longer than its own;
// hubs cannot be opened without privileges (LIBUSB_ERROR_ACCESS); a hotplug callback filtered
// on LIBUSB_CLASS_HUB sees the hubs and only them. Then it prints the tree, `lsusb -t` style:
//
//   Bus 201 Port - Dev 001 ID 1d6b:0002 hub
//       Bus 201 Port 1 Dev 002 ID 1209:0001
//
// and one flat line per device, its parent by address ("-" for a root hub):
//
//   node Bus 201 Port 1 Dev 002 ID 1209:0001 parent 001
//
// The exit status is the number of failed checks.
#include <libusb.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "checks.h"

namespace {

using checks::check;

constexpr int kFirstRemoteBus = 201;

struct Node {
  libusb_device* device;
  libusb_device_descriptor desc;
  std::vector<std::uint8_t> ports;
};

std::string ports_text(const std::vector<std::uint8_t>& ports) {
  if (ports.empty()) return "-";
  std::string s;
  for (std::uint8_t p : ports) s += (s.empty() ? "" : ".") + std::to_string(p);
  return s;
}

int hubs_seen = 0, others_seen = 0;

int LIBUSB_CALL on_hub(libusb_context*, libusb_device* dev, libusb_hotplug_event, void*) {
  libusb_device_descriptor d{};
  libusb_get_device_descriptor(dev, &d);
  if (libusb_get_bus_number(dev) < kFirstRemoteBus) return 0;
  ++(d.bDeviceClass == LIBUSB_CLASS_HUB ? hubs_seen : others_seen);
  return 0;
}

}  // namespace

int main() {
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  libusb_device** list = nullptr;
  const ssize_t count = libusb_get_device_list(ctx, &list);
  std::vector<Node> nodes;
  for (ssize_t i = 0; i < count; ++i) {
    if (libusb_get_bus_number(list[i]) < kFirstRemoteBus) continue;
    Node n{list[i], {}, {}};
    libusb_get_device_descriptor(list[i], &n.desc);
    std::uint8_t ports[7];
    const int depth = libusb_get_port_numbers(list[i], ports, 7);
    if (depth > 0) n.ports.assign(ports, ports + depth);
    nodes.push_back(n);
  }
  check(!nodes.empty(), "remote devices listed: " + std::to_string(nodes.size()));
  auto node_of = [&](libusb_device* d) -> const Node* {
    for (const Node& n : nodes) {
      if (n.device == d) return &n;
    }
    return nullptr;
  };

  int hubs = 0;
  for (const Node& n : nodes) {
    char id[16];
    std::snprintf(id, sizeof id, "%04x:%04x", n.desc.idVendor, n.desc.idProduct);
    const std::string what = std::string(id) + " on bus " +
                             std::to_string(libusb_get_bus_number(n.device)) + " port " +
                             ports_text(n.ports);
    const bool is_hub = n.desc.bDeviceClass == LIBUSB_CLASS_HUB;
    if (is_hub) ++hubs;
    libusb_device* parent = libusb_get_parent(n.device);
    if (n.ports.empty()) {
      check(is_hub, what + ": a root hub (empty port path) is a hub");
      check(parent == nullptr, what + ": a root hub has no parent");
      check(libusb_get_device_address(n.device) == 1, what + ": a root hub is address 1");
    } else {
      const Node* p = node_of(parent);
      check(p != nullptr, what + ": its parent is in the device list");
      if (!p) continue;
      check(p->desc.bDeviceClass == LIBUSB_CLASS_HUB, what + ": its parent is a hub");
      check(libusb_get_bus_number(p->device) == libusb_get_bus_number(n.device),
            what + ": on its parent's bus");
      std::vector<std::uint8_t> expected = p->ports;
      expected.push_back(n.ports.back());
      check(n.ports == expected, what + ": its port path is its parent's plus one port");
      check(libusb_get_device_address(p->device) != libusb_get_device_address(n.device),
            what + ": an address of its own");
      // The chain ends at a root hub, then NULL.
      libusb_device* top = n.device;
      int steps = 0;
      while (libusb_get_parent(top) && steps < 8) {
        top = libusb_get_parent(top);
        ++steps;
      }
      const Node* root = node_of(top);
      check(
          steps == static_cast<int>(n.ports.size()) && root && root->ports.empty(),
          what + ": the parent chain ends at a root hub after " + std::to_string(steps) + " steps");
    }
    if (is_hub) {
      libusb_device_handle* h = nullptr;
      const int r = libusb_open(n.device, &h);
      check(r == LIBUSB_ERROR_ACCESS,
            what + ": opening a hub gives LIBUSB_ERROR_ACCESS: " + libusb_error_name(r));
      if (r == 0) libusb_close(h);
    }
  }

  libusb_hotplug_callback_handle handle = 0;
  check(libusb_hotplug_register_callback(ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED,
                                         LIBUSB_HOTPLUG_ENUMERATE, LIBUSB_HOTPLUG_MATCH_ANY,
                                         LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_CLASS_HUB, &on_hub,
                                         nullptr, &handle) == 0,
        "hotplug callback for class hub");
  libusb_hotplug_deregister_callback(ctx, handle);
  check(hubs_seen == hubs && others_seen == 0,
        "the class-hub hotplug callback saw the " + std::to_string(hubs) +
            " hub(s), and only them (" + std::to_string(hubs_seen) + " hubs, " +
            std::to_string(others_seen) + " others)");

  // The tree, from each root hub down, children by port.
  std::function<void(const Node&, int)> print = [&](const Node& n, int depth) {
    std::printf("tree %*sBus %03u Port %s Dev %03u ID %04x:%04x%s\n", depth * 4, "",
                libusb_get_bus_number(n.device), ports_text(n.ports).c_str(),
                libusb_get_device_address(n.device), n.desc.idVendor, n.desc.idProduct,
                n.desc.bDeviceClass == LIBUSB_CLASS_HUB ? " hub" : "");
    std::vector<const Node*> children;
    for (const Node& c : nodes) {
      if (libusb_get_parent(c.device) == n.device) children.push_back(&c);
    }
    std::sort(children.begin(), children.end(),
              [](const Node* a, const Node* b) { return a->ports < b->ports; });
    for (const Node* c : children) print(*c, depth + 1);
  };
  for (const Node& n : nodes) {
    if (!libusb_get_parent(n.device)) print(n, 0);
  }
  for (const Node& n : nodes) {
    libusb_device* parent = libusb_get_parent(n.device);
    char parent_text[8] = "-";
    if (parent)
      std::snprintf(parent_text, sizeof parent_text, "%03u", libusb_get_device_address(parent));
    std::printf("node Bus %03u Port %s Dev %03u ID %04x:%04x%s parent %s\n",
                libusb_get_bus_number(n.device), ports_text(n.ports).c_str(),
                libusb_get_device_address(n.device), n.desc.idVendor, n.desc.idProduct,
                n.desc.bDeviceClass == LIBUSB_CLASS_HUB ? " hub" : "", parent_text);
  }

  libusb_free_device_list(list, 1);
  libusb_exit(ctx);
  std::printf("%d failures\n", checks::failures);
  return checks::failures;
}
