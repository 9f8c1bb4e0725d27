#include <doctest/doctest.h>

#include "app/options.h"

using reactor::ParseHostPort;

TEST_CASE("ParseHostPort accepts IPv4, bracketed IPv6 and port 0") {
  auto a = ParseHostPort("127.0.0.1:8080");
  REQUIRE(a);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 8080);
  auto b = ParseHostPort("[::1]:0");
  REQUIRE(b);
  CHECK(b->host == "::1");
  CHECK(b->port == 0);
}

TEST_CASE("ParseHostPort rejects what is not HOST:PORT") {
  CHECK_FALSE(ParseHostPort("8080"));
  CHECK_FALSE(ParseHostPort(":8080"));
  CHECK_FALSE(ParseHostPort("host:"));
  CHECK_FALSE(ParseHostPort("host:65536"));
  CHECK_FALSE(ParseHostPort("host:80x"));
  CHECK_FALSE(ParseHostPort("::1:80"));
}

TEST_CASE("IsLoopbackHost") {
  CHECK(reactor::IsLoopbackHost("127.0.0.1"));
  CHECK(reactor::IsLoopbackHost("127.1.2.3"));
  CHECK(reactor::IsLoopbackHost("::1"));
  CHECK(reactor::IsLoopbackHost("localhost"));
  CHECK_FALSE(reactor::IsLoopbackHost("0.0.0.0"));
  CHECK_FALSE(reactor::IsLoopbackHost("10.0.0.1"));
}

namespace {
reactor::Options Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "reactor");
  return reactor::ParseOptions(static_cast<int>(args.size()), args.data());
}
}  // namespace

TEST_CASE("ParseOptions: commands, defaults and usage errors") {
  auto m = Parse({"migrate", "--database-url", "postgresql://x@h/db"});
  CHECK(m.command == reactor::Command::kMigrate);
  CHECK(m.channel == "job_status_changed");
  CHECK(m.listen.port == 8080);
  CHECK(m.history == 100000);
  CHECK(m.max_queue_bytes == 1048576);
  CHECK_FALSE(m.accept_unsigned_payloads);  // signed notifications only, by default

  auto s = Parse({"--database-url", "dbname=x", "--listen", "127.0.0.1:0", "--job-type", "a,b"});
  CHECK(s.command == reactor::Command::kServe);
  CHECK(s.listen.port == 0);
  CHECK(s.job_types == std::vector<std::string>{"a", "b"});
  CHECK(Parse({"--database-url", "dbname=x", "--accept-unsigned-payloads"}).accept_unsigned_payloads);

  auto open = Parse({"serve", "--database-url", "dbname=x", "--listen", "0.0.0.0:9000"});
  CHECK(open.command == reactor::Command::kExit);
  CHECK(open.exit_code == 2);
  auto allowed = Parse({"serve", "--database-url", "dbname=x", "--listen", "0.0.0.0:9000",
                        "--allow-anonymous"});
  CHECK(allowed.command == reactor::Command::kServe);

  auto bad_level = Parse({"--database-url", "dbname=x", "--log-level", "loud"});
  CHECK(bad_level.exit_code == 2);
  auto replay = Parse({"--replay", "j.ndjson", "--speed", "1", "--status", "failed,running"});
  CHECK(replay.command == reactor::Command::kReplay);
  CHECK(replay.statuses.size() == 2);
}

TEST_CASE("ParseOptions: listener limits have defaults, take values and refuse nonsense") {
  auto d = Parse({"--database-url", "dbname=x"});
  CHECK(d.max_connections == 100000);
  CHECK(d.max_header_bytes == 8192);
  CHECK(d.handshake_timeout_ms == 10000);
  CHECK(d.idle_timeout_ms == 60000);
  CHECK(d.ping_interval_ms == 25000);

  auto s = Parse({"--database-url", "dbname=x", "--max-connections", "3", "--max-header-bytes", "2048",
                  "--handshake-timeout-ms", "500", "--idle-timeout-ms", "700", "--ping-interval-ms", "900"});
  CHECK(s.command == reactor::Command::kServe);
  CHECK(s.max_connections == 3);
  CHECK(s.max_header_bytes == 2048);
  CHECK(s.handshake_timeout_ms == 500);
  CHECK(s.idle_timeout_ms == 700);
  CHECK(s.ping_interval_ms == 900);

  CHECK(Parse({"--database-url", "dbname=x", "--max-connections", "0"}).exit_code == 2);
  CHECK(Parse({"--database-url", "dbname=x", "--handshake-timeout-ms", "-5"}).exit_code == 2);
  CHECK(Parse({"--database-url", "dbname=x", "--idle-timeout-ms", "soon"}).exit_code == 2);
  CHECK(Parse({"--database-url", "dbname=x", "--max-header-bytes", "10"}).exit_code == 2);
}

TEST_CASE("ParseOptions: token rules and browser checks") {
  auto d = Parse({"--database-url", "dbname=x"});
  CHECK(d.jwt_leeway_s == 30);
  CHECK(d.jwt_audience.empty());
  CHECK(d.allowed_origins.empty());
  CHECK(d.public_hosts.empty());

  auto s = Parse({"--database-url", "dbname=x", "--jwt-secret", "k", "--jwt-leeway-s", "0",
                  "--jwt-audience", "reactor", "--jwt-issuer", "https://auth.example",
                  "--allowed-origins", "https://App.example.com/,http://localhost:3000",
                  "--public-host", "events.example.com,other.example:8443"});
  CHECK(s.command == reactor::Command::kServe);
  CHECK(s.jwt_leeway_s == 0);
  CHECK(s.jwt_audience == "reactor");
  CHECK(s.jwt_issuer == "https://auth.example");
  CHECK(s.allowed_origins == std::vector<std::string>{"https://app.example.com", "http://localhost:3000"});
  CHECK(s.public_hosts == std::vector<std::string>{"events.example.com", "other.example:8443"});

  CHECK(Parse({"--database-url", "dbname=x", "--jwt-leeway-s", "-1"}).exit_code == 2);
  CHECK(Parse({"--database-url", "dbname=x", "--jwt-leeway-s", "3601"}).exit_code == 2);
  CHECK(Parse({"--database-url", "dbname=x", "--allowed-origins", "app.example.com"}).exit_code == 2);
  CHECK(Parse({"--database-url", "dbname=x", "--public-host", "http://a.example"}).exit_code == 2);
  // A rule on tokens without tokens would be silently ignored: refused instead.
  CHECK(Parse({"--database-url", "dbname=x", "--jwt-audience", "reactor"}).exit_code == 2);
  CHECK(Parse({"--database-url", "dbname=x", "--jwt-issuer", "x"}).exit_code == 2);
}

#include "core/rate_limit.h"

TEST_CASE("RateLimiter passes one line per interval and counts the rest") {
  reactor::RateLimiter r(10000);
  uint64_t suppressed = 99;
  CHECK(r.Allow(1000, &suppressed));
  CHECK(suppressed == 0);
  CHECK_FALSE(r.Allow(2000, &suppressed));
  CHECK_FALSE(r.Allow(10999, &suppressed));
  CHECK(r.Allow(11000, &suppressed));
  CHECK(suppressed == 2);
  CHECK(r.Allow(50000, &suppressed));
  CHECK(suppressed == 0);
}
