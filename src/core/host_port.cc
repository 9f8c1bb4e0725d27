#include "core/host_port.h"

#include <charconv>

namespace reactor {

Result<HostPort> ParseHostPort(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return Status::Error("expected HOST:PORT, got '" + text + "'");
  std::string host = text.substr(0, colon);
  std::string port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return Status::Error("an IPv6 address needs brackets: [" + host + "]:PORT");
  }
  if (host.empty()) return Status::Error("missing host in '" + text + "'");
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value > 65535) {
    return Status::Error("invalid port in '" + text + "'");
  }
  return HostPort{host, static_cast<uint16_t>(value)};
}

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace reactor
