#include <doctest/doctest.h>

#include <string>

#include "ws/handshake.h"
#include "ws/http.h"

using namespace reactor::ws;

namespace {

// Parses a complete request (the handshake works on what the HTTP parser produced).
Request Req(const std::string& text) {
  RequestParser p;
  auto st = p.Feed(text);
  REQUIRE(st.state == ParseStatus::State::kComplete);
  return p.request();
}

std::string Upgrade(const std::string& extra_or_replacements) {
  return "GET /ws HTTP/1.1\r\nHost: localhost:8080\r\n" + extra_or_replacements + "\r\n";
}

const std::string kGood =
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

}  // namespace

TEST_CASE("handshake: the RFC 6455 sample key") {
  CHECK(AcceptKey("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  // A second pair, computed independently with sha1sum and base64 from the RFC's recipe.
  CHECK(AcceptKey("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST_CASE("handshake: a valid request gets the full 101 response") {
  auto c = CheckUpgrade(Req(Upgrade(kGood)));
  REQUIRE(c.ok());
  CHECK(c.accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(SwitchingProtocols(c.accept) ==
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "\r\n");
  CHECK(SwitchingProtocols(c.accept, "Server: reactor\r\n").find("Server: reactor\r\n\r\n") !=
        std::string::npos);
}

TEST_CASE("handshake: header names and tokens in any case, tokens inside comma lists") {
  auto c = CheckUpgrade(Req(Upgrade(
      "UPGRADE: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
      "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n")));
  CHECK(c.ok());
  // Firefox sends "Connection: keep-alive, Upgrade"; some proxies repeat the header.
  c = CheckUpgrade(Req(Upgrade(
      "Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")));
  CHECK(c.ok());
  c = CheckUpgrade(Req(Upgrade(
      "Upgrade: h2c, websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")));
  CHECK(c.ok());
}

TEST_CASE("handshake: a wrong or missing version is 426 naming version 13") {
  for (const char* v : {"8", "12", "14", "13, 8", ""}) {
    std::string h = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    if (*v) h += std::string("Sec-WebSocket-Version: ") + v + "\r\n";
    auto c = CheckUpgrade(Req(Upgrade(h)));
    CAPTURE(v);
    CHECK(c.status == 426);
    std::string resp = UpgradeFailure(c).Serialize();
    CHECK(resp.rfind("HTTP/1.1 426 Upgrade Required\r\n", 0) == 0);
    CHECK(resp.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos);
    CHECK(resp.find("\r\nConnection: Upgrade, close\r\n") != std::string::npos);
  }
}

TEST_CASE("handshake: a missing or malformed key is 400") {
  const char* bad_keys[] = {
      nullptr,                        // missing
      "",                             // empty
      "dGhlIHNhbXBsZSBub25jZQ",       // no padding
      "dGhlIHNhbXBsZSBub25jZQ=",      // 17 bytes worth
      "dGhlIHNhbXBsZSBub25j",         // 15 bytes
      "dGhlIHNhbXBsZSBub25jZQ==AA",   // trailing data
      "dGhlIHNhbXBsZSBub25jZ!==",     // not base64
      "dGhlIHNhbXBsZSBub25jZQ==, dGhlIHNhbXBsZSBub25jZQ==",  // repeated header
  };
  for (const char* k : bad_keys) {
    std::string h = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";
    if (k) h += std::string("Sec-WebSocket-Key: ") + k + "\r\n";
    auto c = CheckUpgrade(Req(Upgrade(h)));
    CAPTURE(k ? k : "(none)");
    CHECK(c.status == 400);
    CHECK_FALSE(c.reason.empty());
    Response r = UpgradeFailure(c);
    CHECK(r.status == 400);
    CHECK_FALSE(r.keep_alive);
  }
  CHECK(IsValidClientKey("AAAAAAAAAAAAAAAAAAAAAA=="));
  CHECK(IsValidClientKey("+/+/+/+/+/+/+/+/+/+/+w=="));
}

TEST_CASE("handshake: method, version, Upgrade and Connection") {
  auto c = CheckUpgrade(Req("POST /ws HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n" + kGood + "\r\n"));
  CHECK(c.status == 405);
  std::string resp = UpgradeFailure(c).Serialize();
  CHECK(resp.find("\r\nAllow: GET\r\n") != std::string::npos);

  c = CheckUpgrade(Req("GET /ws HTTP/1.0\r\nHost: h\r\n" + kGood + "\r\n"));
  CHECK(c.status == 400);

  // A plain GET of the WebSocket endpoint: 426 tells the client what to speak.
  c = CheckUpgrade(Req("GET /ws HTTP/1.1\r\nHost: h\r\n\r\n"));
  CHECK(c.status == 426);
  resp = UpgradeFailure(c).Serialize();
  CHECK(resp.find("\r\nUpgrade: websocket\r\n") != std::string::npos);

  c = CheckUpgrade(Req(Upgrade("Upgrade: h2c\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")));
  CHECK(c.status == 426);

  c = CheckUpgrade(Req(Upgrade("Upgrade: websocket\r\nConnection: keep-alive\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")));
  CHECK(c.status == 400);
  // "upgrades" is not the token "upgrade".
  c = CheckUpgrade(Req(Upgrade("Upgrade: websocket\r\nConnection: upgrades\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")));
  CHECK(c.status == 400);
}

TEST_CASE("handshake: bytes after the request stay for the frame parser") {
  std::string req = Upgrade(kGood);
  std::string early_frame = "\x81\x85\x01\x02\x03\x04" "abcde";
  RequestParser p;
  auto st = p.Feed(req + early_frame);
  REQUIRE(st.state == ParseStatus::State::kComplete);
  CHECK(st.consumed == req.size());
  CHECK(p.request().upgrade);
  CHECK(CheckUpgrade(p.request()).ok());
}
