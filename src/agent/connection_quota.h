// How many client connections the agent holds, in total and per address (pure logic, io
// thread). A connection counts from its admission until its Ticket is destroyed: with the
// session, once everything the client held has been released.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <variant>

#include "agent/limits.h"

namespace usbnet::agent {

class ConnectionQuota {
 public:
  explicit ConnectionQuota(const ConnectionLimits& limits);

  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept = default;
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket();

   private:
    friend class ConnectionQuota;
    struct Counts;
    Ticket(std::shared_ptr<Counts> counts, std::string address);
    void give_back();
    std::shared_ptr<Counts> counts_;
    std::string address_;
  };

  // A ticket for a connection from `address`, or why not (a sentence for the client, which
  // names no other client).
  struct Refused {
    std::string reason;
  };
  std::variant<Ticket, Refused> admit(const std::string& address);

  std::size_t open() const;
  std::size_t open_from(const std::string& address) const;

 private:
  ConnectionLimits limits_;
  std::shared_ptr<Ticket::Counts> counts_;
};

}  // namespace usbnet::agent
