#include <doctest/doctest.h>

#include "ws/browser_guard.h"

using namespace reactor;

namespace {
using R = GuardVerdict::Refusal;

BrowserPolicy NoSecret(std::string listen = "127.0.0.1") {
  BrowserPolicy p;
  p.check_host = true;
  p.listen_host = std::move(listen);
  return p;
}
R Host(const char* host, const BrowserPolicy& p) {
  std::string h = host;
  return CheckHost(&h, p).refusal;
}
R Orig(const char* origin, const char* host, const BrowserPolicy& p) {
  std::string o = origin ? origin : "", h = host ? host : "";
  return CheckOrigin(origin ? &o : nullptr, host ? &h : nullptr, p).refusal;
}
}  // namespace

TEST_CASE("ParseOrigin: scheme://host[:port], lower case, default ports") {
  auto o = ParseOrigin("HTTPS://App.Example.com");
  REQUIRE(o);
  CHECK(o->scheme == "https");
  CHECK(o->host == "app.example.com");
  CHECK(o->port == 443);
  CHECK(ParseOrigin("http://127.0.0.1:8080")->port == 8080);
  CHECK(ParseOrigin("http://[::1]:9")->host == "::1");
  CHECK(ParseOrigin("http://[::1]")->port == 80);
  CHECK(ParseOrigin("chrome-extension://abcdef")->port == 0);
  for (const char* bad : {"null", "", "example.com", "://x", "http://", "http://a/b", "http://a?x",
                          "http://u@a", "http://a:0", "http://a:65536", "http://a:80:80", "http://::1",
                          "1http://a", "http://a b", "http://[::1"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseOrigin(bad));
  }
}

TEST_CASE("ParseHostName and IsLoopbackName") {
  auto h = ParseHostName("LocalHost.:8080");
  REQUIRE(h);
  CHECK(h->host == "localhost");
  CHECK(h->has_port);
  CHECK(h->port == 8080);
  CHECK_FALSE(ParseHostName("example.com")->has_port);
  CHECK(ParseHostName("[::1]:80")->host == "::1");
  for (const char* bad : {"", ":80", "a:", "a:x", "::1", "[::1]x", "[zz]", "[fe80::1%eth0]", "a/b", "a b", "."}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseHostName(bad));
  }
  for (const char* yes : {"localhost", "127.0.0.1", "127.255.3.4", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"}) {
    CAPTURE(yes);
    CHECK(IsLoopbackName(yes));
  }
  for (const char* no : {"127.evil.example", "127.0.0.1.evil.example", "0177.0.0.1", "127.0.0", "127.0.0.256",
                         "128.0.0.1", "localhost.evil.example", "evil-localhost", "::2", "::ffff:10.0.0.1", ""}) {
    CAPTURE(no);
    CHECK_FALSE(IsLoopbackName(no));
  }
}

TEST_CASE("CheckHost: loopback with any port, the listen host, public hosts; others 421") {
  BrowserPolicy p = NoSecret();
  for (const char* ok : {"127.0.0.1:8080", "127.0.0.1", "localhost:1", "LOCALHOST", "[::1]:8080", "127.9.9.9:80"}) {
    CAPTURE(ok);
    CHECK(Host(ok, p) == R::kNone);
  }
  // DNS rebinding: the page's own name arrives as Host.
  for (const char* bad : {"attacker.example:8080", "attacker.example", "127.0.0.1.nip.io:8080", "10.0.0.5:8080", "", "a b"}) {
    CAPTURE(bad);
    CHECK(Host(bad, p) == R::kHost);
  }
  std::string evil = "attacker.example:8080";
  GuardVerdict v = CheckHost(&evil, p);
  CHECK(v.http_status == 421);
  CHECK(v.reason.find("--public-host") != std::string::npos);
  CHECK(v.detail == "Host 'attacker.example:8080'");
  // No Host at all (HTTP/1.0): no browser sends that.
  CHECK(CheckHost(nullptr, p).ok());
  // Off: anything goes.
  p.check_host = false;
  CHECK(Host("attacker.example", p) == R::kNone);

  // The literal listen host, any port.
  BrowserPolicy wide = NoSecret("0.0.0.0");
  CHECK(Host("0.0.0.0:9", wide) == R::kNone);
  CHECK(Host("192.168.1.10:8080", wide) == R::kHost);
  BrowserPolicy v6 = NoSecret("::");
  CHECK(Host("[::]:8080", v6) == R::kNone);
  BrowserPolicy named = NoSecret("reactor.internal");
  CHECK(Host("Reactor.Internal:8080", named) == R::kNone);

  // --public-host: a name alone admits any port; with a port, only that one (a Host
  // without a port matches an entry for 80 or 443).
  auto hosts = ParsePublicHosts({"events.example.com", "other.example:8443", "tls.example:443"});
  REQUIRE(hosts);
  wide.public_hosts = *hosts;
  CHECK(Host("events.example.com", wide) == R::kNone);
  CHECK(Host("events.example.com:1234", wide) == R::kNone);
  CHECK(Host("other.example:8443", wide) == R::kNone);
  CHECK(Host("other.example:8444", wide) == R::kHost);
  CHECK(Host("other.example", wide) == R::kHost);
  CHECK(Host("tls.example", wide) == R::kNone);
  CHECK(Host("evil.example.com", wide) == R::kHost);
}

TEST_CASE("CheckOrigin: none and same-origin pass, listed origins pass, others 403") {
  BrowserPolicy p = NoSecret();
  CHECK(Orig(nullptr, "127.0.0.1:8080", p) == R::kNone);                       // not a browser
  CHECK(Orig("http://127.0.0.1:8080", "127.0.0.1:8080", p) == R::kNone);       // same origin
  CHECK(Orig("http://LOCALHOST:8080", "localhost:8080", p) == R::kNone);
  CHECK(Orig("https://app.example.com", "app.example.com", p) == R::kNone);    // behind TLS
  CHECK(Orig("https://app.example.com", "app.example.com:443", p) == R::kNone);
  CHECK(Orig("http://app.example.com:8080", "app.example.com", p) == R::kOrigin);
  CHECK(Orig("http://[::1]:8080", "[::1]:8080", p) == R::kNone);
  // Cross-site: another host, another port, another scheme's default port.
  CHECK(Orig("https://evil.example", "127.0.0.1:8080", p) == R::kOrigin);
  CHECK(Orig("http://127.0.0.1:9999", "127.0.0.1:8080", p) == R::kOrigin);
  CHECK(Orig("https://127.0.0.1", "127.0.0.1:80", p) == R::kOrigin);
  CHECK(Orig("ftp://127.0.0.1:8080", "127.0.0.1:8080", p) == R::kOrigin);
  CHECK(Orig("null", "127.0.0.1:8080", p) == R::kOrigin);
  CHECK(Orig("http://127.0.0.1:8080/", "127.0.0.1:8080", p) == R::kOrigin);   // not an origin
  CHECK(Orig("http://127.0.0.1:8080", nullptr, p) == R::kOrigin);
  std::string evil = "https://evil.example", host = "127.0.0.1:8080";
  GuardVerdict v = CheckOrigin(&evil, &host, p);
  CHECK(v.http_status == 403);
  CHECK(v.reason.find("--allowed-origins") != std::string::npos);
  CHECK(v.detail == "Origin 'https://evil.example'");

  // --allowed-origins: exact origins (normalized), "null", "*".
  auto allowed = ParseAllowedOrigins({"https://App.Example.com/", " http://localhost:3000", "null"});
  REQUIRE(allowed);
  CHECK(*allowed == std::vector<std::string>{"https://app.example.com", "http://localhost:3000", "null"});
  p.allowed_origins = *allowed;
  CHECK(Orig("https://app.example.com", "127.0.0.1:8080", p) == R::kNone);
  CHECK(Orig("https://app.example.com:443", "127.0.0.1:8080", p) == R::kNone);
  CHECK(Orig("http://localhost:3000", "127.0.0.1:8080", p) == R::kNone);
  CHECK(Orig("null", "127.0.0.1:8080", p) == R::kNone);
  CHECK(Orig("http://app.example.com", "127.0.0.1:8080", p) == R::kOrigin);
  CHECK(Orig("https://app.example.com.evil.example", "127.0.0.1:8080", p) == R::kOrigin);
  p.allowed_origins = {"*"};
  CHECK(Orig("https://anything.example", "127.0.0.1:8080", p) == R::kNone);
  CHECK(Orig("garbage", "127.0.0.1:8080", p) == R::kNone);
}

TEST_CASE("flag lists are validated and the bad entry named") {
  auto bad = ParseAllowedOrigins({"https://ok.example", "app.example.com"});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("'app.example.com'") != std::string::npos);
  CHECK_FALSE(ParseAllowedOrigins({"https://a.example/path"}));
  CHECK(ParseAllowedOrigins({"*"})->front() == "*");
  CHECK(ParseAllowedOrigins({" ", ""})->empty());
  CHECK_FALSE(ParsePublicHosts({"https://a.example"}));
  CHECK_FALSE(ParsePublicHosts({"a.example:99999"}));
  auto hosts = ParsePublicHosts({"A.example:8080", "[::1]"});
  REQUIRE(hosts);
  CHECK((*hosts)[0].host == "a.example");
  CHECK((*hosts)[0].port == 8080);
  CHECK((*hosts)[1].host == "::1");
  CHECK(LogSafe("a\r\nb") == "a??b");
  CHECK(LogSafe(std::string(200, 'x'), 10) == "xxxxxxxxxx...");
}
