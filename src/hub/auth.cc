#include "hub/auth.h"

#include <jwt.h>
#include <simdjson.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include "core/sat_time.h"

namespace reactor::hub {
namespace {
struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
struct CharFree {
  void operator()(char* p) const { free(p); }
};

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

// A NumericDate claim (RFC 7519 section 2), held to integers in [0, kMaxNumericDate]:
// libjwt's own reader turns a string or a float into 0 and cannot tell it from a real 0.
Status ReadDate(object claims, const char* name, std::optional<int64_t>& out) {
  element e;
  if (claims[name].get(e) != simdjson::SUCCESS) return Status::Ok();  // absent
  int64_t v = 0;
  switch (e.type()) {
    case element_type::INT64:
      if (e.get(v) != simdjson::SUCCESS) return Status::Error(std::string(name) + " is not a number");
      break;
    case element_type::UINT64:  // above INT64_MAX
      return Status::Error(std::string(name) + " is beyond the year 9999");
    case element_type::DOUBLE:
      return Status::Error(std::string(name) + " is not an integer");
    default:
      return Status::Error(std::string(name) + " is not a number");
  }
  if (v < 0) return Status::Error(std::string(name) + " is negative");
  if (v > kMaxNumericDate) return Status::Error(std::string(name) + " is beyond the year 9999");
  out = v;
  return Status::Ok();
}

// An optional string claim; error when present with another type.
Status ReadString(object claims, const char* name, std::optional<std::string>& out) {
  element e;
  if (claims[name].get(e) != simdjson::SUCCESS) return Status::Ok();
  std::string_view s;
  if (e.get(s) != simdjson::SUCCESS) return Status::Error(std::string(name) + " is not a string");
  out = std::string(s);
  return Status::Ok();
}

// `aud` is a string or an array of strings (RFC 7519 section 4.1.3).
Status CheckAudience(object claims, const std::string& want) {
  element e;
  if (claims["aud"].get(e) != simdjson::SUCCESS) return Status::Error("token has no aud");
  const Status bad_type = Status::Error("aud is not a string or an array of strings");
  std::string_view s;
  if (e.get(s) == simdjson::SUCCESS) {
    return s == want ? Status::Ok() : Status::Error("token audience does not match");
  }
  simdjson::dom::array arr;
  if (e.get(arr) != simdjson::SUCCESS) return bad_type;
  bool found = false;
  for (element item : arr) {
    if (item.get(s) != simdjson::SUCCESS) return bad_type;
    found = found || s == want;
  }
  return found ? Status::Ok() : Status::Error("token audience does not match");
}
}  // namespace

Result<Principal> VerifyToken(std::string_view token, const std::string& secret, int64_t now_s,
                              const TokenRules& rules) {
  if (token.empty()) return Status::Error("empty token");
  if (token.size() > 8192) return Status::Error("token too long");
  std::string tok(token);
  jwt_t* raw = nullptr;
  int rc = jwt_decode(&raw, tok.c_str(), reinterpret_cast<const unsigned char*>(secret.data()),
                      static_cast<int>(secret.size()));
  std::unique_ptr<jwt_t, JwtFree> jwt(raw);
  if (rc != 0 || !jwt) return Status::Error("invalid token (malformed or bad signature)");
  // A key was given, but insist on the one algorithm we accept (no "none", no RS/HS swap).
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) return Status::Error("token algorithm must be HS256");

  // The claims as libjwt holds them (re-encoded by jansson: one value per name), read
  // with their JSON types so that `"exp":"123"` or `"exp":1.5` is named for what it is.
  std::unique_ptr<char, CharFree> json(jwt_get_grants_json(jwt.get(), nullptr));
  if (!json) return Status::Error("token claims are not a JSON object");
  thread_local simdjson::dom::parser parser;
  object claims;
  if (parser.parse(json.get(), std::strlen(json.get())).get(claims) != simdjson::SUCCESS) {
    return Status::Error("token claims are not a JSON object");
  }

  std::optional<int64_t> exp, nbf, iat;
  std::optional<std::string> sub, role, iss;
  for (auto [name, out] : {std::pair{"exp", &exp}, std::pair{"nbf", &nbf}, std::pair{"iat", &iat}}) {
    if (Status s = ReadDate(claims, name, *out); !s) return s;
  }
  if (Status s = ReadString(claims, "sub", sub); !s) return s;
  if (Status s = ReadString(claims, "role", role); !s) return s;

  // Every operand is bounded (dates by kMaxNumericDate, the leeway by its flag), but the
  // arithmetic saturates anyway: a hostile number must never wrap into the past.
  const int64_t leeway = rules.leeway_s < 0 ? 0 : rules.leeway_s;
  if (exp && now_s >= SaturatingAdd(*exp, leeway)) return Status::Error("token expired");
  if (nbf && now_s < SaturatingSub(*nbf, leeway)) return Status::Error("token not yet valid");
  if (iat && *iat > SaturatingAdd(now_s, leeway)) return Status::Error("token issued in the future");

  if (!rules.audience.empty()) {
    if (Status s = CheckAudience(claims, rules.audience); !s) return s;
  }
  if (!rules.issuer.empty()) {
    if (Status s = ReadString(claims, "iss", iss); !s) return s;
    if (!iss) return Status::Error("token has no iss");
    if (*iss != rules.issuer) return Status::Error("token issuer does not match");
  }

  Principal p;
  if (exp) p.expires_at = SaturatingAdd(*exp, leeway);
  if (sub) p.user_id = *sub;
  if (role) p.role = *role;
  p.sees_all = role && (*role == "service_role" || *role == "admin");
  if (!p.sees_all && p.user_id.empty()) return Status::Error("token has no sub");
  return p;
}

Result<Filter> AuthorizeFilter(const Principal& who, Filter requested) {
  if (who.sees_all) return requested;
  if (!requested.user_id.empty() && requested.user_id != who.user_id) {
    return Status::Error("filter names another user's jobs");
  }
  requested.user_id = who.user_id;
  return requested;
}

}  // namespace reactor::hub
