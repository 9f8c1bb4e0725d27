#include <doctest/doctest.h>
#include <jwt.h>

#include <cstdlib>

#include "hub/auth.h"

using namespace reactor::hub;

namespace {
std::string Make(const char* alg_secret, jwt_alg_t alg, const char* sub, const char* role, long exp) {
  jwt_t* j = nullptr;
  jwt_new(&j);
  if (sub) jwt_add_grant(j, "sub", sub);
  if (role) jwt_add_grant(j, "role", role);
  if (exp) jwt_add_grant_int(j, "exp", exp);
  if (alg != JWT_ALG_NONE) {
    jwt_set_alg(j, alg, reinterpret_cast<const unsigned char*>(alg_secret),
                static_cast<int>(std::string(alg_secret).size()));
  }
  char* s = jwt_encode_str(j);
  std::string out = s ? s : "";
  free(s);
  jwt_free(j);
  return out;
}
reactor::Event Ev(const char* user) {
  reactor::Event e;
  e.id = 1;
  if (user) {
    e.user_id = user;
    e.has_user = true;
  }
  return e;
}
}  // namespace

TEST_CASE("a user token sees only that user's events") {
  auto p = VerifyToken(Make("s3cret", JWT_ALG_HS256, "u1", "authenticated", 2000), "s3cret", 1000);
  REQUIRE(p);
  CHECK(p->user_id == "u1");
  CHECK_FALSE(p->sees_all);
  CHECK(p->expires_at == 2000);
  CHECK(p->MaySee(Ev("u1")));
  CHECK_FALSE(p->MaySee(Ev("u2")));
  CHECK_FALSE(p->MaySee(Ev(nullptr)));
  CHECK(p->Expired(2000));
  CHECK_FALSE(p->Expired(1999));
}

TEST_CASE("service_role and admin see everything, null user_id included") {
  for (const char* role : {"service_role", "admin"}) {
    auto p = VerifyToken(Make("k", JWT_ALG_HS256, nullptr, role, 0), "k", 1000);
    REQUIRE(p);
    CHECK(p->sees_all);
    CHECK(p->MaySee(Ev(nullptr)));
    CHECK(p->MaySee(Ev("anyone")));
  }
}

TEST_CASE("forged, expired, unsigned and wrong-algorithm tokens are refused") {
  CHECK_FALSE(VerifyToken(Make("other", JWT_ALG_HS256, "u1", nullptr, 0), "s3cret", 1000));
  CHECK_FALSE(VerifyToken(Make("s3cret", JWT_ALG_HS256, "u1", nullptr, 999), "s3cret", 1000));
  CHECK_FALSE(VerifyToken(Make("s3cret", JWT_ALG_HS512, "u1", nullptr, 0), "s3cret", 1000));
  CHECK_FALSE(VerifyToken(Make("", JWT_ALG_NONE, "u1", "admin", 0), "s3cret", 1000));
  CHECK_FALSE(VerifyToken(Make("s3cret", JWT_ALG_HS256, nullptr, "authenticated", 0), "s3cret", 1000));
  CHECK_FALSE(VerifyToken("not.a.token", "s3cret", 1000));
  CHECK_FALSE(VerifyToken("", "s3cret", 1000));
  auto e = VerifyToken(Make("s3cret", JWT_ALG_HS256, "u1", nullptr, 999), "s3cret", 1000);
  CHECK(e.error() == "token expired");
}

TEST_CASE("filters: users are narrowed to themselves and refused for others") {
  Principal user{"u1", false, 0};
  reactor::Filter f;
  auto narrowed = AuthorizeFilter(user, f);
  REQUIRE(narrowed);
  CHECK(narrowed->user_id == "u1");
  f.user_id = "u2";
  CHECK_FALSE(AuthorizeFilter(user, f));
  f.user_id = "u1";
  CHECK(AuthorizeFilter(user, f));
  auto admin = AuthorizeFilter(Principal::Open(), reactor::Filter{});
  REQUIRE(admin);
  CHECK(admin->user_id.empty());
}
