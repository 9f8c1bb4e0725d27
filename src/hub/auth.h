// Who a subscriber is (CONTRACT section 5): an HS256 JWT whose `sub` is the user id and
// whose `role` of service_role or admin sees every event. Mirrors the seed's row-level
// policies: a user sees only events whose user_id equals `sub`; events with a null
// user_id belong to nobody but the privileged roles. Pure: time is a parameter.
//
// Every claim is read from the token as hostile input: time claims must be integers in
// [0, 253402300799] (the end of the year 9999), so no arithmetic on them can overflow,
// and a refusal names the claim and the reason (never the token or a claim's value).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/defaults.h"
#include "core/event.h"
#include "core/filter.h"
#include "core/status.h"

namespace reactor::hub {

struct Principal {
  std::string user_id;   // `sub`; empty for a privileged token without one
  bool sees_all = false; // role service_role/admin, or no secret configured
  // Unix seconds at which the token stops being valid (its `exp` plus the leeway);
  // 0 = never. At most 253402300799 + the leeway.
  int64_t expires_at = 0;

  std::string role;      // `role`, when the token has one

  static Principal Open() { return Principal{"", true, 0, ""}; }  // no secret configured

  bool MaySee(const Event& ev) const {
    return sees_all || (ev.has_user && ev.user_id == user_id);
  }
  bool Expired(int64_t now_s) const { return expires_at != 0 && now_s >= expires_at; }
};

// The largest NumericDate a token may carry: 9999-12-31T23:59:59Z.
inline constexpr int64_t kMaxNumericDate = 253402300799;

// What a token must satisfy besides its signature (--jwt-leeway-s, --jwt-audience,
// --jwt-issuer).
struct TokenRules {
  int64_t leeway_s = defaults::kJwtLeewayS;  // clock skew allowed on exp, nbf and iat; 0..3600
  std::string audience;   // non-empty: `aud` must equal it, or be an array holding it
  std::string issuer;     // non-empty: `iss` must equal it
};

// Verifies `token` against `secret` at time `now_s`: the header's alg must be HS256, the
// signature valid; `exp`, `nbf` and `iat` (each optional) integers within range, with
// now < exp + leeway, now >= nbf - leeway and iat <= now + leeway; `aud` and `iss` as
// `rules` ask; `sub` a string, present unless the role is privileged; `role` a string.
// Errors say which claim and why ("token expired", "exp is not an integer", ...), never
// echo the token.
Result<Principal> VerifyToken(std::string_view token, const std::string& secret, int64_t now_s,
                              const TokenRules& rules = {});

// A filter a principal may ask for: an unprivileged user can only name their own
// user_id; with none named, the filter is narrowed to them. Fails (→ "forbidden") when
// the filter names another user.
Result<Filter> AuthorizeFilter(const Principal& who, Filter requested);

}  // namespace reactor::hub
