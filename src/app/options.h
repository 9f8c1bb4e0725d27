// Every command-line flag and environment variable of `reactor` (../CONTRACT section 2),
// parsed and validated. Pure: no I/O beyond reading the environment through CLI11.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/defaults.h"
#include "core/host_port.h"
#include "core/status.h"

namespace reactor {

enum class Command { kServe, kMigrate, kReplay, kExit };

struct Options {
  Command command = Command::kServe;
  int exit_code = 0;  // with kExit: what main returns (help, version, usage errors)

  std::string database_url;
  HostPort listen{"127.0.0.1", defaults::kListenPort};
  bool listen_given = false;
  // /metrics (and /healthz, /readyz) on a listener of their own; /metrics then leaves --listen.
  std::optional<HostPort> metrics_listen;
  std::string channel = defaults::kChannel;
  std::string jwt_secret;
  // Token rules (docs/security.md): clock-skew leeway on exp/nbf/iat, and optional
  // required `aud` and `iss` values (both need --jwt-secret).
  int64_t jwt_leeway_s = defaults::kJwtLeewayS;
  std::string jwt_audience;
  std::string jwt_issuer;
  bool allow_anonymous = false;
  // Browsers (docs/security.md): origins admitted to /ws besides the same origin, after
  // validation and normalization ("*" = any); Host names admitted besides loopback and
  // the literal --listen host (host or host:port).
  std::vector<std::string> allowed_origins;
  std::vector<std::string> public_hosts;
  std::string record_file;
  uint64_t history = defaults::kHistory;
  uint64_t max_queue_bytes = defaults::kMaxQueueBytes;
  // Listener limits (docs/protocol.md, "Limits"); each trip is counted in /metrics.
  uint64_t max_connections = defaults::kMaxConnections;
  uint64_t listen_backlog = defaults::kListenBacklog;  // listen(2) backlog (the kernel caps it at somaxconn)
  uint64_t max_header_bytes = defaults::kMaxHeaderBytes;
  uint64_t handshake_timeout_ms = defaults::kHandshakeTimeoutMs;
  uint64_t idle_timeout_ms = defaults::kIdleTimeoutMs;
  uint64_t ping_interval_ms = defaults::kPingIntervalMs;
  // Per-connection protocol limits (docs/protocol.md, "Limits").
  uint64_t max_subscriptions = defaults::kMaxSubscriptions;
  uint64_t max_filter_values = defaults::kMaxFilterValues;
  uint64_t max_filter_bytes = defaults::kMaxFilterBytes;
  uint64_t resume_entries_per_pass = defaults::kResumeEntriesPerPass;
  uint64_t max_held_events = defaults::kMaxHeldEvents;
  uint64_t max_resume_rows = defaults::kMaxResumeRows;
  // Conflating subscriptions (docs/protocol.md): distinct jobs' events one connection may
  // have waiting for queue room before it is closed 1013 all the same.
  uint64_t max_conflated_jobs = defaults::kMaxConflatedJobs;
  bool no_scheduler = false;
  // The operator's console (docs/protocol.md): users may act on their own jobs; events
  // in one `history` answer; how often the totals are read again while watched.
  bool allow_user_actions = false;
  uint64_t max_history_events = defaults::kMaxHistoryEvents;
  uint64_t counts_refresh_s = defaults::kCountsRefreshMs / 1000;
  // Database reads made for clients (resume, snapshot) on their own connection.
  uint64_t max_reads_per_connection = defaults::kMaxReadsPerConnection;
  uint64_t max_database_reads = defaults::kMaxDatabaseReads;
  uint64_t read_timeout_ms = defaults::kReadTimeoutMs;
  // `reactor migrate`: how long to wait for another migrate's lock.
  uint64_t migrate_lock_timeout_ms = defaults::kMigrateLockTimeoutMs;
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
