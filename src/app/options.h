// Every command-line flag and environment variable of `reactor` (../CONTRACT section 2),
// parsed and validated. Pure: no I/O beyond reading the environment through CLI11.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/host_port.h"
#include "core/status.h"

namespace reactor {

enum class Command { kServe, kMigrate, kReplay, kExit };

struct Options {
  Command command = Command::kServe;
  int exit_code = 0;  // with kExit: what main returns (help, version, usage errors)

  std::string database_url;
  HostPort listen{"127.0.0.1", 8080};
  bool listen_given = false;
  std::string channel = "job_status_changed";
  std::string jwt_secret;
  // Token rules (docs/security.md): clock-skew leeway on exp/nbf/iat, and optional
  // required `aud` and `iss` values (both need --jwt-secret).
  int64_t jwt_leeway_s = 30;
  std::string jwt_audience;
  std::string jwt_issuer;
  bool allow_anonymous = false;
  // Browsers (docs/security.md): origins admitted to /ws besides the same origin, after
  // validation and normalization ("*" = any); Host names admitted besides loopback and
  // the literal --listen host (host or host:port).
  std::vector<std::string> allowed_origins;
  std::vector<std::string> public_hosts;
  std::string record_file;
  uint64_t history = 100000;
  uint64_t max_queue_bytes = 1048576;
  // Listener limits (docs/protocol.md, "Limits"); each trip is counted in /metrics.
  uint64_t max_connections = 100000;
  uint64_t listen_backlog = 4096;  // listen(2) backlog (the kernel caps it at somaxconn)
  uint64_t max_header_bytes = 8192;
  uint64_t handshake_timeout_ms = 10000;
  uint64_t idle_timeout_ms = 60000;
  uint64_t ping_interval_ms = 25000;
  // Per-connection protocol limits (docs/protocol.md, "Limits").
  uint64_t max_subscriptions = 64;
  uint64_t max_filter_values = 256;
  uint64_t max_filter_bytes = 4096;
  uint64_t resume_entries_per_pass = 4096;
  // Conflating subscriptions (docs/protocol.md): distinct jobs' events one connection may
  // have waiting for queue room before it is closed 1013 all the same.
  uint64_t max_conflated_jobs = 10000;
  bool no_scheduler = false;
  // Database reads made for clients (resume, snapshot) on their own connection.
  uint64_t max_reads_per_connection = 2;
  uint64_t max_database_reads = 256;
  uint64_t read_timeout_ms = 30000;
  // `reactor migrate`: how long to wait for another migrate's lock.
  uint64_t migrate_lock_timeout_ms = 60000;
  // Pass unsigned payloads on the channel on as foreign payloads instead of rejecting
  // them (docs/security.md: anyone who can connect can then inject them).
  bool accept_unsigned_payloads = false;
  std::string log_level = "info";

  // --replay
  std::string replay_file;
  double speed = 0;
  std::optional<int64_t> from_id, to_id;
  std::vector<std::string> job_types, statuses;
  std::string user_id, job_id;
};

// Parses argv (and the environment). On --help/--version/usage errors, returns
// command kExit with the text already printed and exit_code set (0 or 2).
Options ParseOptions(int argc, const char* const* argv);

}  // namespace reactor
