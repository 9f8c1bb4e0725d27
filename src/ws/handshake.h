// The WebSocket opening handshake, server side (RFC 6455 section 4.2). Pure.
//
// The server first checks the request (CheckUpgrade), then does its own checks (path,
// token), then answers either SwitchingProtocols(...) or UpgradeFailure(...).
#pragma once

#include <string>
#include <string_view>

#include "ws/http.h"

namespace reactor::ws {

// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
// AcceptKey("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
std::string AcceptKey(std::string_view client_key);

// Sec-WebSocket-Key is base64 that decodes to exactly 16 bytes.
bool IsValidClientKey(std::string_view client_key);

struct UpgradeCheck {
  int status = 0;       // 101 for a valid upgrade; otherwise 400, 405 or 426
  std::string reason;   // why not, for the log and the response body
  std::string accept;   // the Sec-WebSocket-Accept value when status == 101
  bool ok() const { return status == 101; }
};

// Checks an opening handshake: method GET (else 405), HTTP/1.1 or later (else 400),
// `Upgrade` containing the token "websocket" and `Connection` the token "upgrade", both
// case-insensitive in comma lists (else 426 for a missing Upgrade, 400 for a missing
// Connection token), `Sec-WebSocket-Version: 13` (else 426) and a `Sec-WebSocket-Key` of
// 16 bytes in base64 (else 400). Path, origin and authorization are the caller's.
UpgradeCheck CheckUpgrade(const Request& request);

// The complete "101 Switching Protocols" response. `extra_headers` are preformatted
// "Name: value\r\n" lines (empty for none). No subprotocol or extension is negotiated.
std::string SwitchingProtocols(std::string_view accept, std::string_view extra_headers = {});

// The HTTP error response for a failed check (the connection closes after it).
// REQUIRES: !check.ok()
Response UpgradeFailure(const UpgradeCheck& check);

}  // namespace reactor::ws
