#include <doctest/doctest.h>

#include <random>

#include "core/notify_auth.h"

using reactor::NotifyVerdict;
using reactor::NotifyVerifier;
using reactor::SignNotification;

namespace {

const std::string kKeyHex(64, '5');
const std::string kKey(32, '\x55');

// Computed by PostgreSQL (migration 003) with
//   UPDATE reactor.notify_key SET key = decode(repeat('55', 32), 'hex');
//   SELECT reactor.sign_notification('job_status_changed', '1234'::xid8,
//            '{"id": 1, "kind": "status", "job_id": "caf' || chr(233) || '"}');
// in a UTF-8 database (its sha256() HMAC also matches pgcrypto's hmac() and RFC 4231's
// vectors: tests/sql/014_notify_mac.sql).
const std::string kFromPostgres =
    "{\"mac\":\"c036c47ef333544cf4c6dc46d5db395a00e12f5ae7f28d08b13635cd8c5209fb\",\"txid\":\"1234\","
    "\"id\": 1, \"kind\": \"status\", \"job_id\": \"caf\xc3\xa9\"}";
const std::string kEvent = "{\"id\": 1, \"kind\": \"status\", \"job_id\": \"caf\xc3\xa9\"}";

void Key(NotifyVerifier& v) { REQUIRE(v.SetKeyHex(kKeyHex).ok()); }

}  // namespace

TEST_CASE("notify_auth: a notification signed by PostgreSQL verifies and gives back the event") {
  NotifyVerifier v("job_status_changed");
  REQUIRE(v.SetKeyHex(kKeyHex).ok());
  std::string payload;
  uint64_t txid = 0;
  REQUIRE(v.Verify(kFromPostgres, payload, txid) == NotifyVerdict::kOk);
  CHECK(payload == kEvent);
  CHECK(txid == 1234);
  // The test signer agrees with PostgreSQL byte for byte.
  CHECK(SignNotification(kKey, "job_status_changed", 1234, kEvent) == kFromPostgres);
}

TEST_CASE("notify_auth: the verifier's HMAC equals OpenSSL's one-shot HMAC for any key and payload") {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string key(32, '\0');
    for (auto& c : key) c = static_cast<char>(rng());
    std::string hex;
    for (unsigned char c : key) {
      hex += "0123456789abcdef"[c >> 4];
      hex += "0123456789abcdef"[c & 15];
    }
    std::string payload = "{";
    size_t n = 2 + rng() % 9000;
    for (size_t k = 0; k < n; ++k) payload += static_cast<char>(rng());  // any bytes
    uint64_t txid = rng() >> (rng() % 64);
    std::string channel = i % 2 ? "job_status_changed" : "chan:" + std::to_string(i);
    NotifyVerifier v(channel);
    REQUIRE(v.SetKeyHex(hex).ok());
    std::string out;
    uint64_t got = 0;
    REQUIRE(v.Verify(SignNotification(key, channel, txid, payload), out, got) == NotifyVerdict::kOk);
    CHECK(out == payload);
    CHECK(got == txid);
  }
}

TEST_CASE("notify_auth: unsigned, malformed and forged texts are told apart") {
  NotifyVerifier v;
  Key(v);
  std::string p;
  uint64_t t = 0;
  CHECK(v.Verify(kEvent, p, t) == NotifyVerdict::kUnsigned);
  CHECK(v.Verify("", p, t) == NotifyVerdict::kUnsigned);
  CHECK(v.Verify("{\"mac\": \"", p, t) == NotifyVerdict::kUnsigned);  // not the exact prefix
  CHECK(v.Verify("{\"mac\":\"", p, t) == NotifyVerdict::kMalformed);
  std::string good = kFromPostgres;
  auto with = [&](size_t pos, size_t len, const std::string& by) { return std::string(good).replace(pos, len, by); };
  size_t mac = 8, txid = good.find("\"1234\"") + 1;
  CHECK(v.Verify(with(mac, 1, "C"), p, t) == NotifyVerdict::kMalformed);       // upper-case hex
  CHECK(v.Verify(with(mac, 1, "g"), p, t) == NotifyVerdict::kMalformed);
  CHECK(v.Verify(with(mac, 2, ""), p, t) == NotifyVerdict::kMalformed);        // 62 digits
  CHECK(v.Verify(with(txid, 4, ""), p, t) == NotifyVerdict::kMalformed);       // no txid
  CHECK(v.Verify(with(txid, 4, "01234"), p, t) == NotifyVerdict::kMalformed);  // leading zero
  CHECK(v.Verify(with(txid, 4, "-1"), p, t) == NotifyVerdict::kMalformed);
  CHECK(v.Verify(with(txid, 4, "123456789012345678901"), p, t) == NotifyVerdict::kMalformed);  // 21 digits
  CHECK(v.Verify(with(txid, 4, "99999999999999999999"), p, t) == NotifyVerdict::kMalformed);   // > 2^64
  CHECK(v.Verify(good.substr(0, txid + 6), p, t) == NotifyVerdict::kMalformed);  // nothing after txid
  CHECK(v.Verify(with(txid + 5, 1, " "), p, t) == NotifyVerdict::kMalformed);    // no comma
  // Well formed, wrong MAC.
  CHECK(v.Verify(with(mac, 1, good[mac] == '0' ? "1" : "0"), p, t) == NotifyVerdict::kBadSignature);
  CHECK(v.Verify(with(txid, 4, "1235"), p, t) == NotifyVerdict::kBadSignature);
  CHECK(v.Verify(good.substr(0, good.size() - 1) + " }", p, t) == NotifyVerdict::kBadSignature);
  CHECK(v.Verify(good + " ", p, t) == NotifyVerdict::kBadSignature);
  NotifyVerifier other("other_channel");
  Key(other);
  CHECK(other.Verify(good, p, t) == NotifyVerdict::kBadSignature);
  NotifyVerifier no_key;
  CHECK(no_key.Verify(good, p, t) == NotifyVerdict::kNoKey);
  CHECK(no_key.Verify(kEvent, p, t) == NotifyVerdict::kUnsigned);
  CHECK(std::string(reactor::NotifyVerdictName(NotifyVerdict::kBadSignature)) == "bad_signature");
}

TEST_CASE("notify_auth: keys") {
  NotifyVerifier v;
  CHECK_FALSE(v.SetKeyHex("").ok());
  CHECK_FALSE(v.SetKeyHex(std::string(62, 'a')).ok());
  CHECK_FALSE(v.SetKeyHex(std::string(64, 'A')).ok());
  CHECK_FALSE(v.SetKeyHex(std::string(63, 'a') + "x").ok());
  CHECK_FALSE(v.has_key());
  CHECK_FALSE(v.SetKey("short").ok());
  REQUIRE(v.SetKeyHex(kKeyHex).ok());
  CHECK(v.has_key());
  // A failed replacement keeps the key.
  CHECK_FALSE(v.SetKeyHex("zz").ok());
  std::string p;
  uint64_t t = 0;
  CHECK(v.Verify(kFromPostgres, p, t) == NotifyVerdict::kOk);
  // Rotation: the new key verifies, the old signatures no longer do.
  REQUIRE(v.SetKeyHex(std::string(64, '6')).ok());
  CHECK(v.Verify(kFromPostgres, p, t) == NotifyVerdict::kBadSignature);
}
