// fork() in a program that uses the shim: the process-wide locks are held across it (so that
// the child never inherits one locked by another thread), and a child does not touch its
// parent's agent connections.
#pragma once

#include <memory>

namespace usbnet::interpose {

class AgentLink;

// True in a child created by fork() after the shim had started talking to agents: the parent's
// connections belong to the parent, so the child's contexts offer no remote devices.
bool forked_child();
void note_agent_use();  // installs the fork handler, once
// Keeps an agent link alive for the rest of the process (a fork child must never destroy the
// parent's links: that would join threads that do not exist in the child).
void keep_forever(std::shared_ptr<AgentLink> link);

}  // namespace usbnet::interpose
