// The raw loopback-TLS limit of this machine: what a simple program gets from TLS 1.3 over TCP
// for the same work as usbnet over TLS, with the same TLS as usbnet's: its TLS contexts
// (security::TlsContext: TLS 1.3 only, the same read-ahead and buffer), Ed25519 keys in
// self-signed certificates, each side checking the other's key in the handshake, and so the
// same cipher suite. Blocking sockets with usbnet's socket options (loopback_socket.h), the
// server in a child process; every measurement gets a fresh connection whose TLS handshake is
// done before the clock starts. The shapes are raw_tcp.h's.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include <memory>

#include "security/ed25519_key.h"

namespace usbnet::security {
class TlsContext;
}

namespace usbnet::bench {

class RawTlsServer {
 public:
  // Forks the server, listening on 127.0.0.1 on a free port, presenting `server_key` and
  // letting in only `client_key`, which the client presents.
  RawTlsServer(const security::KeyPair& server_key, const security::KeyPair& client_key);
  ~RawTlsServer();
  RawTlsServer(const RawTlsServer&) = delete;
  RawTlsServer& operator=(const RawTlsServer&) = delete;

  int port() const { return port_; }
  // The same measurements as RawTcpServer's, over TLS.
  std::chrono::nanoseconds median_round_trip(std::size_t request, std::size_t response,
                                             int iterations);
  double pipelined_throughput(std::size_t chunk, int depth, std::size_t total, bool in);
  double stream_throughput(std::size_t chunk, std::size_t total, bool in);

 private:
  security::PublicKey server_key_;
  std::shared_ptr<const security::TlsContext> client_context_;  // one per process, as usbnet's
  int pid_ = -1;
  int port_ = 0;
};

// The cipher suite and protocol ("TLS_AES_256_GCM_SHA384, TLSv1.3") a client with
// `client_key`, made as usbnet's clients make theirs, negotiates with the TLS server on
// 127.0.0.1:`port` that presents `server_key`: the raw server, or a usbnet-agent that lets
// that client in. Throws when the handshake fails.
std::string negotiated_tls(int port, const security::KeyPair& client_key,
                           const security::PublicKey& server_key);

}  // namespace usbnet::bench
