// The hub rule both sides follow when a filter picks devices (the agent's --export, the shim's
// USBNET_DEVICES): hubs are topology, so a device the filter names is taken with every hub
// above it, named by the filter or not, from the top down; a hub the filter does not name
// waits aside until a device below it is taken (a hub it names is taken on its own); any other
// device it does not name is left out. The agent finds a record's hub by port path, the shim by
// the parent_id the agent sent: the caller says how.
#pragma once

#include <algorithm>
#include <vector>

namespace usbnet::hub_selection {

// What happens to a record when it arrives.
enum class Arrival {
  Take,      // the filter names it: take it, with the hubs above it (chain_to_take)
  SetAside,  // a hub it does not name: keep it known, untaken
  LeaveOut,  // a device it does not name
};
inline Arrival on_arrival(bool named, bool is_hub) {
  if (named) return Arrival::Take;
  return is_hub ? Arrival::SetAside : Arrival::LeaveOut;
}

template <typename Record>
struct Chain {
  // The records to take, from the top down, ending with the device itself.
  std::vector<Record*> to_take;
  // The taken hub the top of the chain hangs from; nullptr for a root (or a hub not known).
  Record* above = nullptr;
  // The walk reached a root or a taken hub; false: a hub on the way up is not known (it has not
  // arrived yet, or it left), or the records form a loop (a broken peer may send one).
  bool complete = true;
};

// The chain that taking `device` takes. `is_root(r)`: r is the top of its tree. `parent_of(r)`:
// r's hub among the known records (taken, or set aside), or nullptr. `taken(r)`: whether r is
// taken already.
template <typename Record, typename IsRoot, typename ParentOf, typename Taken>
Chain<Record> chain_to_take(Record& device, IsRoot is_root, ParentOf parent_of, Taken taken) {
  Chain<Record> chain;
  std::vector<Record*> up{&device};  // from the device up
  for (Record* r = &device; !is_root(*r);) {
    Record* parent = parent_of(*r);
    if (!parent || std::find(up.begin(), up.end(), parent) != up.end()) {
      chain.complete = false;
      break;
    }
    if (taken(*parent)) {
      chain.above = parent;
      break;
    }
    up.push_back(parent);
    r = parent;
  }
  chain.to_take.assign(up.rbegin(), up.rend());
  return chain;
}

}  // namespace usbnet::hub_selection
