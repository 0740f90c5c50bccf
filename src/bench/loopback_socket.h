// Loopback TCP sockets as the benchmark's own programs use them (the raw baseline, the delaying
// proxy): blocking, with usbnet's socket options, and whole-buffer reads and writes.
#pragma once

#include <cstddef>

namespace usbnet::bench {

// The socket options usbnet's own loopback connections use: TCP_NODELAY, and Reno (see
// src/transport/tcp_channel.cpp: on loopback a model-based controller such as BBR paces a
// long-lived connection at a stale rate). Using usbnet's keeps the comparison like for like.
void set_tcp_options(int fd);

// A socket listening on 127.0.0.1 on a free port (its number in `port`); throws on failure.
int listen_on_loopback(int& port);
// A connection to 127.0.0.1:`port` with set_tcp_options; throws on failure.
int connect_to_loopback(int port);

// False when the connection ended or failed first.
bool read_all(int fd, void* data, std::size_t n);
bool write_all(int fd, const void* data, std::size_t n);

}  // namespace usbnet::bench
