// The MAC of a notification on the event channel (docs/security.md). Any role that can
// connect may pg_notify on the channel; only reactor's own SQL functions can read the key
// (reactor.notify_key, migration 003). They send
//
//   {"mac":"<64 lowercase hex>","txid":"<decimal>",<the event JSON after its "{">
//   mac = HMAC-SHA256(key, channel ":" txid ":" event JSON)
//
// where the event JSON is reactor.job_events.payload::text (or the truncated form, or a
// "config" doorbell) and txid the writing transaction's id. Verifying gives back the event
// JSON byte for byte ("{" followed by the rest) and the txid. Pure: no libpq, no libuv.
//
// Threading: one thread per NotifyVerifier (it reuses digest contexts). Not copyable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace reactor {

enum class NotifyVerdict : uint8_t {
  kOk,
  kUnsigned,      // does not begin with {"mac":" (a foreign payload, or a forgery)
  kMalformed,     // begins like a signed one, but the mac or txid field is not well formed
  kBadSignature,  // well formed, the MAC does not match (forged, altered, other channel or key)
  kNoKey,         // signed, but no key has been set yet
};
inline constexpr size_t kNotifyVerdictCount = 5;
// "ok", "unsigned", "malformed", "bad_signature", "no_key": the label of
// reactor_payloads_rejected_total{reason=...}.
const char* NotifyVerdictName(NotifyVerdict v);

inline constexpr size_t kNotifyKeyBytes = 32;

class NotifyVerifier {
 public:
  // `channel` is the one the reactor LISTENs on: a notification signed for another
  // channel does not verify.
  explicit NotifyVerifier(std::string channel = "job_status_changed");
  ~NotifyVerifier();
  NotifyVerifier(const NotifyVerifier&) = delete;
  NotifyVerifier& operator=(const NotifyVerifier&) = delete;

  void set_channel(std::string channel) { channel_ = std::move(channel); }
  const std::string& channel() const { return channel_; }

  // The key as `SELECT encode(key, 'hex') FROM reactor.notify_key` gives it: 64 hex
  // digits. On error the previous key (if any) is kept.
  Status SetKeyHex(std::string_view hex);
  // The raw key bytes (kNotifyKeyBytes).
  Status SetKey(std::string_view key);
  bool has_key() const { return has_key_; }

  // Checks `text`. On kOk, `payload` holds the event JSON and `txid` the transaction id;
  // otherwise both are unspecified. The MAC is compared in constant time.
  NotifyVerdict Verify(std::string_view text, std::string& payload, uint64_t& txid);

 private:
  struct Digest;  // OpenSSL digest contexts holding the keyed inner and outer states
  std::string channel_;
  std::unique_ptr<Digest> digest_;
  bool has_key_ = false;
};

// A verified payload may begin with the row's horizon (migration 005):
// {"horizon":"<decimal>",<the event after its "{">. Takes it out (leaving the event JSON
// byte for byte) and returns it; 0 when there is none, and `payload` is left as it is.
uint64_t TakeHorizon(std::string& payload);

// What reactor.sign_notification returns for `payload` (a JSON object's text, starting
// with "{" and longer than "{}"): for tests, fuzzing and tools. Independent of
// NotifyVerifier's code path (one-shot HMAC over the assembled message).
std::string SignNotification(std::string_view key, std::string_view channel, uint64_t txid,
                             std::string_view payload);

}  // namespace reactor
