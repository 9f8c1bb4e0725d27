#include "core/notify_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cassert>
#include <charconv>

namespace reactor {
namespace {

constexpr std::string_view kMacPrefix = R"({"mac":")";
constexpr std::string_view kTxidField = R"(","txid":")";
constexpr std::string_view kTxidEnd = R"(",)";
constexpr size_t kMacHex = 64;
constexpr size_t kBlock = 64;  // SHA-256's block size
constexpr size_t kTxidMaxDigits = 20;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not what encode(..., 'hex') writes
}

bool DecodeHex(std::string_view hex, unsigned char* out) {
  for (size_t i = 0; i < hex.size() / 2; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return hex.size() % 2 == 0;
}

void EncodeHex(const unsigned char* in, size_t n, std::string& out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[in[i] >> 4];
    out += kDigits[in[i] & 15];
  }
}

}  // namespace

const char* NotifyVerdictName(NotifyVerdict v) {
  switch (v) {
    case NotifyVerdict::kOk: return "ok";
    case NotifyVerdict::kUnsigned: return "unsigned";
    case NotifyVerdict::kMalformed: return "malformed";
    case NotifyVerdict::kBadSignature: return "bad_signature";
    case NotifyVerdict::kNoKey: return "no_key";
  }
  return "?";
}

// HMAC as RFC 2104 defines it, with the two keyed states computed once per key: each
// message then costs two context copies and the hashing, no allocation.
struct NotifyVerifier::Digest {
  EVP_MD_CTX* inner = EVP_MD_CTX_new();  // after absorbing key XOR ipad
  EVP_MD_CTX* outer = EVP_MD_CTX_new();  // after absorbing key XOR opad
  EVP_MD_CTX* work = EVP_MD_CTX_new();
  ~Digest() {
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
    EVP_MD_CTX_free(work);
  }
  bool ok() const { return inner && outer && work; }
};

NotifyVerifier::NotifyVerifier(std::string channel)
    : channel_(std::move(channel)), digest_(std::make_unique<Digest>()) {}

NotifyVerifier::~NotifyVerifier() = default;

Status NotifyVerifier::SetKeyHex(std::string_view hex) {
  std::array<unsigned char, kNotifyKeyBytes> key{};
  if (hex.size() != 2 * kNotifyKeyBytes || !DecodeHex(hex, key.data())) {
    return Status::Error("the notification key must be " + std::to_string(2 * kNotifyKeyBytes) +
                         " lower-case hex digits (got " + std::to_string(hex.size()) + " characters)");
  }
  return SetKey(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
}

Status NotifyVerifier::SetKey(std::string_view key) {
  if (key.size() != kNotifyKeyBytes) {
    return Status::Error("the notification key must be " + std::to_string(kNotifyKeyBytes) + " bytes");
  }
  if (!digest_->ok()) return Status::Error("out of memory for the digest contexts");
  std::array<unsigned char, kBlock> ipad, opad;
  ipad.fill(0x36);
  opad.fill(0x5c);
  for (size_t i = 0; i < key.size(); ++i) {
    ipad[i] ^= static_cast<unsigned char>(key[i]);
    opad[i] ^= static_cast<unsigned char>(key[i]);
  }
  bool ok = EVP_DigestInit_ex(digest_->inner, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(digest_->inner, ipad.data(), ipad.size()) == 1 &&
            EVP_DigestInit_ex(digest_->outer, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(digest_->outer, opad.data(), opad.size()) == 1;
  OPENSSL_cleanse(ipad.data(), ipad.size());
  OPENSSL_cleanse(opad.data(), opad.size());
  if (!ok) {
    has_key_ = false;
    return Status::Error("SHA-256 is not available");
  }
  has_key_ = true;
  return Status::Ok();
}

NotifyVerdict NotifyVerifier::Verify(std::string_view text, std::string& payload, uint64_t& txid) {
  if (text.substr(0, kMacPrefix.size()) != kMacPrefix) return NotifyVerdict::kUnsigned;
  std::string_view rest = text.substr(kMacPrefix.size());
  std::array<unsigned char, 32> mac;
  if (rest.size() < kMacHex || !DecodeHex(rest.substr(0, kMacHex), mac.data())) {
    return NotifyVerdict::kMalformed;
  }
  rest.remove_prefix(kMacHex);
  if (rest.substr(0, kTxidField.size()) != kTxidField) return NotifyVerdict::kMalformed;
  rest.remove_prefix(kTxidField.size());
  size_t digits = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
  // Canonical decimal only (what xid8's text output is): no sign, no leading zero.
  if (digits == 0 || digits > kTxidMaxDigits || (digits > 1 && rest[0] == '0')) {
    return NotifyVerdict::kMalformed;
  }
  std::string_view txid_text = rest.substr(0, digits);
  auto [end, ec] = std::from_chars(txid_text.data(), txid_text.data() + digits, txid);
  if (ec != std::errc() || end != txid_text.data() + digits) return NotifyVerdict::kMalformed;
  rest.remove_prefix(digits);
  if (rest.substr(0, kTxidEnd.size()) != kTxidEnd) return NotifyVerdict::kMalformed;
  rest.remove_prefix(kTxidEnd.size());
  if (rest.empty()) return NotifyVerdict::kMalformed;  // the event had no field: "{}"
  if (!has_key_) return NotifyVerdict::kNoKey;

  payload.assign(1, '{');
  payload.append(rest);

  // channel ":" txid ":" payload. The split is unambiguous for the fixed channel: txid is
  // digits only and the payload begins with "{".
  std::array<unsigned char, EVP_MAX_MD_SIZE> inner_hash, expected;
  unsigned int n = 0;
  Digest& d = *digest_;
  bool ok = EVP_MD_CTX_copy_ex(d.work, d.inner) == 1 &&
            EVP_DigestUpdate(d.work, channel_.data(), channel_.size()) == 1 &&
            EVP_DigestUpdate(d.work, ":", 1) == 1 &&
            EVP_DigestUpdate(d.work, txid_text.data(), txid_text.size()) == 1 &&
            EVP_DigestUpdate(d.work, ":", 1) == 1 &&
            EVP_DigestUpdate(d.work, payload.data(), payload.size()) == 1 &&
            EVP_DigestFinal_ex(d.work, inner_hash.data(), &n) == 1 && n == 32 &&
            EVP_MD_CTX_copy_ex(d.work, d.outer) == 1 &&
            EVP_DigestUpdate(d.work, inner_hash.data(), n) == 1 &&
            EVP_DigestFinal_ex(d.work, expected.data(), &n) == 1 && n == 32;
  if (!ok) return NotifyVerdict::kBadSignature;  // a digest failure never verifies
  if (CRYPTO_memcmp(expected.data(), mac.data(), mac.size()) != 0) return NotifyVerdict::kBadSignature;
  return NotifyVerdict::kOk;
}

std::string SignNotification(std::string_view key, std::string_view channel, uint64_t txid,
                             std::string_view payload) {
  assert(payload.size() >= 3 && payload.front() == '{');
  std::string txid_text = std::to_string(txid);
  std::string message;
  message.append(channel).append(":").append(txid_text).append(":").append(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &n);
  std::string out(kMacPrefix);
  EncodeHex(mac, n, out);
  out.append(kTxidField).append(txid_text).append(kTxidEnd).append(payload.substr(1));
  return out;
}

uint64_t TakeHorizon(std::string& payload) {
  static constexpr std::string_view kHead = "{\"horizon\":\"";
  if (payload.compare(0, kHead.size(), kHead) != 0) return 0;
  size_t i = kHead.size();
  uint64_t h = 0;
  const size_t digits_from = i;
  while (i < payload.size() && payload[i] >= '0' && payload[i] <= '9' && i - digits_from < 20) {
    const uint64_t d = static_cast<uint64_t>(payload[i] - '0');
    if (h > (UINT64_MAX - d) / 10) return 0;  // not an xid8
    h = h * 10 + d;
    ++i;
  }
  if (i == digits_from || i + 1 >= payload.size() || payload[i] != '"' || payload[i + 1] != ',') return 0;
  payload.erase(1, i + 1);  // keep the "{", drop "horizon":"N",
  return h;
}

}  // namespace reactor
