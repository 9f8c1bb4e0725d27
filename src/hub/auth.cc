#include "hub/auth.h"

#include <jwt.h>

#include <cerrno>
#include <memory>

namespace reactor::hub {
namespace {
struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
}  // namespace

Result<Principal> VerifyToken(std::string_view token, const std::string& secret, int64_t now_s) {
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

  Principal p;
  errno = 0;
  long exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno == 0) {
    if (exp <= 0 || exp <= now_s) return Status::Error("token expired");
    p.expires_at = exp;
  }
  if (const char* sub = jwt_get_grant(jwt.get(), "sub")) p.user_id = sub;
  if (const char* role = jwt_get_grant(jwt.get(), "role")) {
    std::string r = role;
    p.sees_all = r == "service_role" || r == "admin";
  }
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
