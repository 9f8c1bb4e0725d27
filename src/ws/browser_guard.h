// What a browser may do with the listener (docs/security.md): two checks that stop a web
// page on another site from reading the event stream.
//
// - CheckOrigin (cross-site WebSocket hijacking): a WebSocket upgrade that carries an
//   Origin must come from the same origin (the Origin's host:port is the Host header's)
//   or one listed in --allowed-origins. No Origin (a non-browser client) passes.
// - CheckHost (DNS rebinding): when it is on (no --jwt-secret, or --public-host given),
//   the Host header must name a loopback host (localhost, 127.0.0.0/8, [::1]) with any
//   port, the literal --listen host, or a --public-host. A page whose name was rebound
//   to 127.0.0.1 sends its own name as Host and is refused.
//
// Pure: header values in, a verdict out; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace reactor {

// A serialized origin (RFC 6454): scheme and host in lower case, the host without IPv6
// brackets, the port explicit or the scheme's default (80 for http/ws, 443 for
// https/wss, else 0).
struct Origin {
  std::string scheme;
  std::string host;
  uint16_t port = 0;
  bool operator==(const Origin&) const = default;
};

// "https://app.example.com", "http://127.0.0.1:8080", "http://[::1]". nullopt for "null"
// and for anything that is not scheme://host[:port] (a path, user info, a bad port).
std::optional<Origin> ParseOrigin(std::string_view text);

// A Host header value or a --public-host entry: host[:port], the host in lower case
// without IPv6 brackets or a trailing dot.
struct HostName {
  std::string host;
  uint16_t port = 0;
  bool has_port = false;
};
std::optional<HostName> ParseHostName(std::string_view text);

// localhost, a dotted-quad 127.x.y.z, ::1 or ::ffff:127.x.y.z (host without brackets).
bool IsLoopbackName(std::string_view host);

struct BrowserPolicy {
  // --allowed-origins, besides the same origin: "*" admits any; "null" the opaque origin.
  std::vector<std::string> allowed_origins;
  bool check_host = false;          // DNS-rebinding check on
  std::string listen_host;          // the literal --listen host
  std::vector<HostName> public_hosts;  // --public-host
};

struct GuardVerdict {
  enum class Refusal : uint8_t { kNone, kHost, kOrigin };
  Refusal refusal = Refusal::kNone;
  int http_status = 0;  // 421 (host) or 403 (origin)
  std::string reason;   // for the response body: says which flag admits it
  std::string detail;   // for the log: the refused value, made safe to print
  bool ok() const { return refusal == Refusal::kNone; }
};

// `host`: the Host header, or null when the request had none (HTTP/1.0).
GuardVerdict CheckHost(const std::string* host, const BrowserPolicy& policy);
// `origin`, `host`: the headers, or null when absent.
GuardVerdict CheckOrigin(const std::string* origin, const std::string* host,
                         const BrowserPolicy& policy);

// Flag values, comma lists already split: each entry validated ("*", "null" or an
// origin; host or host:port), returned normalized. Errors name the bad entry.
Result<std::vector<std::string>> ParseAllowedOrigins(const std::vector<std::string>& entries);
Result<std::vector<HostName>> ParsePublicHosts(const std::vector<std::string>& entries);

// At most `max` printable ASCII characters of `s`, others as '?', for a log line.
std::string LogSafe(std::string_view s, size_t max = 100);

}  // namespace reactor
