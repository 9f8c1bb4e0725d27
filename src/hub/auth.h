// Who a subscriber is (CONTRACT section 5): an HS256 JWT whose `sub` is the user id and
// whose `role` of service_role or admin sees every event. Mirrors the seed's row-level
// policies: a user sees only events whose user_id equals `sub`; events with a null
// user_id belong to nobody but the privileged roles. Pure: time is a parameter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/event.h"
#include "core/filter.h"
#include "core/status.h"

namespace reactor::hub {

struct Principal {
  std::string user_id;   // `sub`; empty for a privileged token without one
  bool sees_all = false; // role service_role/admin, or no secret configured
  int64_t expires_at = 0;  // unix seconds; 0 = never

  static Principal Open() { return Principal{"", true, 0}; }  // no secret configured

  bool MaySee(const Event& ev) const {
    return sees_all || (ev.has_user && ev.user_id == user_id);
  }
  bool Expired(int64_t now_s) const { return expires_at != 0 && now_s >= expires_at; }
};

// Verifies `token` against `secret` at time `now_s`: the header's alg must be HS256, the
// signature valid, `exp` (when present) in the future, and `sub` present unless the role
// is privileged. Errors say which, never echo the token.
Result<Principal> VerifyToken(std::string_view token, const std::string& secret, int64_t now_s);

// A filter a principal may ask for: an unprivileged user can only name their own
// user_id; with none named, the filter is narrowed to them. Fails (→ "forbidden") when
// the filter names another user.
Result<Filter> AuthorizeFilter(const Principal& who, Filter requested);

}  // namespace reactor::hub
