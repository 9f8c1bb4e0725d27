#include "ws/handshake.h"

#include <openssl/evp.h>

#include <cassert>
#include <cstring>

namespace reactor::ws {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

}  // namespace

std::string AcceptKey(std::string_view client_key) {
  std::string input;
  input.reserve(client_key.size() + kGuid.size());
  input.append(client_key).append(kGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  // EVP rather than SHA1(): the low-level digest calls are deprecated in OpenSSL 3.
  int ok = EVP_Digest(input.data(), input.size(), digest, &digest_len, EVP_sha1(), nullptr);
  assert(ok == 1 && digest_len == 20);
  (void)ok;
  unsigned char out[4 * ((20 + 2) / 3) + 1];
  int n = EVP_EncodeBlock(out, digest, static_cast<int>(digest_len));
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

bool IsValidClientKey(std::string_view key) {
  // 16 bytes are 22 base64 digits and "==". Checked by hand: EVP_DecodeBlock does not
  // report padding and accepts whitespace.
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    if (!IsBase64Char(key[i])) return false;
  }
  return true;
}

UpgradeCheck CheckUpgrade(const Request& req) {
  UpgradeCheck c;
  auto fail = [&c](int status, std::string_view why) {
    c.status = status;
    c.reason.assign(why);
    return c;
  };
  if (req.method != "GET") return fail(405, "a WebSocket handshake must be a GET");
  if (req.http_major < 1 || (req.http_major == 1 && req.http_minor < 1)) {
    return fail(400, "a WebSocket handshake needs HTTP/1.1");
  }
  const std::string* upgrade = req.Header("upgrade");
  if (upgrade == nullptr || !HasToken(*upgrade, "websocket")) {
    return fail(426, "this endpoint speaks WebSocket: send Upgrade: websocket");
  }
  const std::string* connection = req.Header("connection");
  if (connection == nullptr || !HasToken(*connection, "upgrade")) {
    return fail(400, "Connection header lacks the upgrade token");
  }
  const std::string* version = req.Header("sec-websocket-version");
  if (version == nullptr || *version != "13") {
    return fail(426, "unsupported Sec-WebSocket-Version (13 is spoken here)");
  }
  const std::string* key = req.Header("sec-websocket-key");
  if (key == nullptr) return fail(400, "missing Sec-WebSocket-Key");
  if (!IsValidClientKey(*key)) return fail(400, "Sec-WebSocket-Key is not 16 bytes of base64");
  c.status = 101;
  c.accept = AcceptKey(*key);
  return c;
}

std::string SwitchingProtocols(std::string_view accept, std::string_view extra_headers) {
  std::string out;
  out.reserve(160 + extra_headers.size());
  out.append("HTTP/1.1 101 Switching Protocols\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Accept: ");
  out.append(accept).append("\r\n");
  out.append(extra_headers);
  out.append("\r\n");
  return out;
}

Response UpgradeFailure(const UpgradeCheck& check) {
  assert(!check.ok());
  Response r;
  switch (check.status) {
    case 405: r = MethodNotAllowed("GET"); break;
    case 426: r = UpgradeRequired(check.reason); break;
    default: r = BadRequest(check.reason); break;
  }
  r.keep_alive = false;
  if (check.status == 405) r.body = TextResponse(405, check.reason).body;
  return r;
}

}  // namespace reactor::ws
