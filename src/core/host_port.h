// A listen address as the command line writes it ("127.0.0.1:8080", "[::1]:0"). Pure.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

struct sockaddr;

namespace reactor {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// "127.0.0.1:8080", "[::1]:0", "0.0.0.0:80". Port 0 means any free port.
Result<HostPort> ParseHostPort(const std::string& text);

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(const std::string& host);
// A socket address in 127.0.0.0/8, ::1, or an IPv4-mapped 127.0.0.0/8.
bool IsLoopbackAddress(const struct sockaddr* addr);

}  // namespace reactor
