#include <doctest/doctest.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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
// A token whose claims are `claims` exactly as written (any JSON types), signed HS256.
std::string Raw(const char* secret, const char* claims) {
  jwt_t* j = nullptr;
  jwt_new(&j);
  REQUIRE(jwt_add_grants_json(j, claims) == 0);
  jwt_set_alg(j, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret),
              static_cast<int>(std::string(secret).size()));
  char* s = jwt_encode_str(j);
  std::string out = s ? s : "";
  free(s);
  jwt_free(j);
  return out;
}
std::string B64Url(const std::string& in) {
  static const char* kDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  unsigned bits = 0;
  int have = 0;
  for (unsigned char ch : in) {
    bits = (bits << 8) | ch;
    have += 8;
    while (have >= 6) {
      have -= 6;
      out += kDigits[(bits >> have) & 63];
    }
  }
  if (have > 0) out += kDigits[(bits << (6 - have)) & 63];
  return out;
}
// A token signed here (not by libjwt), for claims libjwt's encoder cannot write.
std::string HandSigned(const std::string& secret, const std::string& payload) {
  std::string input = B64Url(R"({"alg":"HS256","typ":"JWT"})") + "." + B64Url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + B64Url(std::string(reinterpret_cast<char*>(mac), len));
}
// The reason VerifyToken gives for `claims` at `now` (or "ok").
std::string Why(const char* claims, int64_t now = 1000, const TokenRules& rules = {}) {
  auto p = VerifyToken(Raw("k", claims), "k", now, rules);
  return p ? std::string("ok") : p.error();
}
TokenRules Leeway(int64_t s) {
  TokenRules r;
  r.leeway_s = s;
  return r;
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
  auto p = VerifyToken(Make("s3cret", JWT_ALG_HS256, "u1", "authenticated", 2000), "s3cret", 1000, Leeway(0));
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

TEST_CASE("forged, expired, unsigned and wrong-algorithm tokens are refused, each with its reason") {
  auto why = [](const std::string& token) {
    auto p = VerifyToken(token, "s3cret", 1000, Leeway(0));
    REQUIRE_FALSE(p);
    // The reason never carries the token or a piece of it.
    for (size_t at = 0; at + 8 <= token.size(); at += 8) CHECK(p.error().find(token.substr(at, 8)) == std::string::npos);
    return p.error();
  };
  CHECK(why(Make("other", JWT_ALG_HS256, "u1", nullptr, 0)) == "invalid token (malformed or bad signature)");
  CHECK(why(Make("s3cret", JWT_ALG_HS256, "u1", nullptr, 999)) == "token expired");
  CHECK(why(Make("s3cret", JWT_ALG_HS256, "u1", nullptr, 1000)) == "token expired");
  CHECK(why(Make("s3cret", JWT_ALG_HS512, "u1", nullptr, 0)) == "token algorithm must be HS256");
  CHECK(why(Make("", JWT_ALG_NONE, "u1", "admin", 0)) == "invalid token (malformed or bad signature)");
  CHECK(why(Make("s3cret", JWT_ALG_HS256, nullptr, "authenticated", 0)) == "token has no sub");
  CHECK(why("not.a.token") == "invalid token (malformed or bad signature)");
  CHECK(why(std::string(9000, 'a')) == "token too long");
  CHECK_FALSE(VerifyToken("", "s3cret", 1000));
}

TEST_CASE("exp, nbf and iat are checked with the leeway") {
  // exp: valid while now < exp + leeway; the session ends then too.
  CHECK(Why(R"({"sub":"u","exp":999})", 1000, Leeway(0)) == "token expired");
  CHECK(Why(R"({"sub":"u","exp":999})", 1000) == "ok");  // default leeway 30 s
  CHECK(Why(R"({"sub":"u","exp":970})", 1000) == "token expired");
  CHECK(Why(R"({"sub":"u","exp":971})", 1000) == "ok");
  auto p = VerifyToken(Raw("k", R"({"sub":"u","exp":999})"), "k", 1000);
  REQUIRE(p);
  CHECK(p->expires_at == 1029);
  CHECK_FALSE(p->Expired(1028));
  CHECK(p->Expired(1029));
  // nbf: refused while now < nbf - leeway.
  CHECK(Why(R"({"sub":"u","nbf":1031})") == "token not yet valid");
  CHECK(Why(R"({"sub":"u","nbf":1030})") == "ok");
  CHECK(Why(R"({"sub":"u","nbf":1001})", 1000, Leeway(0)) == "token not yet valid");
  CHECK(Why(R"({"sub":"u","nbf":1000})", 1000, Leeway(0)) == "ok");
  CHECK(Why(R"({"sub":"u","nbf":0})") == "ok");
  // iat: refused when later than now + leeway.
  CHECK(Why(R"({"sub":"u","iat":1031})") == "token issued in the future");
  CHECK(Why(R"({"sub":"u","iat":1030})") == "ok");
  CHECK(Why(R"({"sub":"u","iat":1001})", 1000, Leeway(0)) == "token issued in the future");
  CHECK(Why(R"({"sub":"u","iat":900,"nbf":900,"exp":2000})", 1000, Leeway(0)) == "ok");
  // Negative leeway (not reachable through the flag) counts as none.
  CHECK(Why(R"({"sub":"u","exp":1001})", 1000, Leeway(-100)) == "ok");
  CHECK(Why(R"({"sub":"u","exp":1000})", 1000, Leeway(-100)) == "token expired");
}

TEST_CASE("time claims must be integers within range; the reason names the claim") {
  for (std::string c : {"exp", "nbf", "iat"}) {
    auto claims = [&](const std::string& v) { return R"({"sub":"u",")" + c + "\":" + v + "}"; };
    CAPTURE(c);
    CHECK(Why(claims(R"("123")").c_str()) == c + " is not a number");
    CHECK(Why(claims("true").c_str()) == c + " is not a number");
    CHECK(Why(claims("null").c_str()) == c + " is not a number");
    CHECK(Why(claims("[1]").c_str()) == c + " is not a number");
    CHECK(Why(claims(R"({"a":1})").c_str()) == c + " is not a number");
    CHECK(Why(claims("1.5").c_str()) == c + " is not an integer");
    CHECK(Why(claims("1e3").c_str()) == c + " is not an integer");
    CHECK(Why(claims("-5").c_str()) == c + " is negative");
    // The value that overflowed `exp * 1000` in the server's expiry timer.
    CHECK(Why(claims("18446744073709552").c_str()) == c + " is beyond the year 9999");
    CHECK(Why(claims("9223372036854775807").c_str()) == c + " is beyond the year 9999");
    CHECK(Why(claims("253402300800").c_str()) == c + " is beyond the year 9999");
  }
  // The last second of 9999 is a valid (if odd) expiry; the sum with the leeway is exact.
  auto p = VerifyToken(Raw("k", R"({"sub":"u","exp":253402300799})"), "k", 1000);
  REQUIRE(p);
  CHECK(p->expires_at == 253402300799 + 30);
  // A number libjwt's JSON reader cannot hold at all fails the decode; the hand-made
  // signature is good (the same token with a small exp passes).
  CHECK(VerifyToken(HandSigned("k", R"({"sub":"u","exp":2000})"), "k", 1000));
  auto huge = VerifyToken(HandSigned("k", R"({"sub":"u","exp":99999999999999999999})"), "k", 1000);
  REQUIRE_FALSE(huge);
  CHECK(huge.error() == "invalid token (malformed or bad signature)");
}

TEST_CASE("sub and role must be strings") {
  CHECK(Why(R"({"sub":42})") == "sub is not a string");
  CHECK(Why(R"({"sub":"u","role":["admin"]})") == "role is not a string");
  CHECK(Why(R"({"role":"admin"})") == "ok");
  CHECK(Why(R"({"role":"authenticated"})") == "token has no sub");
  CHECK(Why(R"({"sub":""})") == "token has no sub");
}

TEST_CASE("--jwt-audience: aud must equal it or, as an array, hold it") {
  TokenRules r;
  r.audience = "reactor";
  CHECK(Why(R"({"sub":"u","aud":"reactor"})", 1000, r) == "ok");
  CHECK(Why(R"({"sub":"u","aud":["web","reactor"]})", 1000, r) == "ok");
  CHECK(Why(R"({"sub":"u","aud":"web"})", 1000, r) == "token audience does not match");
  CHECK(Why(R"({"sub":"u","aud":"Reactor"})", 1000, r) == "token audience does not match");
  CHECK(Why(R"({"sub":"u","aud":["web"]})", 1000, r) == "token audience does not match");
  CHECK(Why(R"({"sub":"u","aud":[]})", 1000, r) == "token audience does not match");
  CHECK(Why(R"({"sub":"u"})", 1000, r) == "token has no aud");
  CHECK(Why(R"({"sub":"u","aud":5})", 1000, r) == "aud is not a string or an array of strings");
  CHECK(Why(R"({"sub":"u","aud":["reactor",5]})", 1000, r) == "aud is not a string or an array of strings");
  // Not configured: aud is not looked at.
  CHECK(Why(R"({"sub":"u","aud":"anything"})") == "ok");
  CHECK(Why(R"({"sub":"u","aud":5})") == "ok");
}

TEST_CASE("--jwt-issuer: iss must equal it") {
  TokenRules r;
  r.issuer = "https://auth.example.com";
  CHECK(Why(R"({"sub":"u","iss":"https://auth.example.com"})", 1000, r) == "ok");
  CHECK(Why(R"({"sub":"u","iss":"https://evil.example"})", 1000, r) == "token issuer does not match");
  CHECK(Why(R"({"sub":"u"})", 1000, r) == "token has no iss");
  CHECK(Why(R"({"sub":"u","iss":7})", 1000, r) == "iss is not a string");
  CHECK(Why(R"({"sub":"u","iss":7})") == "ok");
  // Both rules together, and the time checks come first.
  r.audience = "reactor";
  CHECK(Why(R"({"sub":"u","iss":"https://auth.example.com","aud":"reactor"})", 1000, r) == "ok");
  CHECK(Why(R"({"sub":"u","iss":"x","aud":"y","exp":1})", 1000, r) == "token expired");
}

TEST_CASE("filters: users are narrowed to themselves and refused for others") {
  Principal user{"u1", false, 0, ""};
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
