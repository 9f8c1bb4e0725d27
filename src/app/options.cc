#include "app/options.h"

#include <CLI/CLI.hpp>

#include "ws/browser_guard.h"

#include <charconv>
#include <iostream>

namespace reactor {
namespace {

std::vector<std::string> SplitCommas(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& s : in) {
    size_t start = 0;
    while (start <= s.size()) {
      size_t comma = s.find(',', start);
      if (comma == std::string::npos) comma = s.size();
      if (comma > start) out.push_back(s.substr(start, comma - start));
      start = comma + 1;
    }
  }
  return out;
}

const char* const kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};

}  // namespace

Options ParseOptions(int argc, const char* const* argv) {
  Options o;
  CLI::App app{"reactor: PostgreSQL job-status events to WebSocket subscribers", "reactor"};
  app.set_version_flag("--version", std::string("reactor ") + REACTOR_VERSION);
  app.fallthrough();
  app.require_subcommand(0, 1);

  std::string listen;
  app.add_option("--database-url", o.database_url, "libpq URI or key=value conninfo")
      ->envname("DATABASE_URL");
  app.add_option("--listen", listen, "HTTP + WebSocket address HOST:PORT (port 0 = any)")
      ->envname("REACTOR_LISTEN");
  std::string metrics_listen;
  app.add_option("--metrics-listen", metrics_listen,
                 "serve /metrics (and /healthz, /readyz) on this HOST:PORT only, not on --listen")
      ->envname("REACTOR_METRICS_LISTEN");
  app.add_option("--channel", o.channel, "NOTIFY channel")->envname("REACTOR_CHANNEL")
      ->capture_default_str();
  app.add_option("--jwt-secret", o.jwt_secret, "HS256 secret; none = no authentication")
      ->envname("REACTOR_JWT_SECRET");
  app.add_option("--jwt-leeway-s", o.jwt_leeway_s,
                 "seconds of clock skew allowed on a token's exp, nbf and iat")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{3600}));
  app.add_option("--jwt-audience", o.jwt_audience,
                 "tokens must carry this aud (a string, or an array holding it)")
      ->envname("REACTOR_JWT_AUDIENCE");
  app.add_option("--jwt-issuer", o.jwt_issuer, "tokens must carry this iss")
      ->envname("REACTOR_JWT_ISSUER");
  std::vector<std::string> allowed_origins, public_hosts;
  app.add_option("--allowed-origins", allowed_origins,
                 "origins (https://app.example.com, comma separated; * = any) whose pages may "
                 "open /ws besides the same origin")
      ->envname("REACTOR_ALLOWED_ORIGINS");
  app.add_option("--public-host", public_hosts,
                 "Host names (host or host:port, comma separated) answered besides loopback "
                 "and the --listen host")
      ->envname("REACTOR_PUBLIC_HOST");
  app.add_flag("--allow-anonymous", o.allow_anonymous,
               "allow a non-loopback --listen without a JWT secret");
  app.add_option("--record", o.record_file, "append every event to this journal")
      ->envname("REACTOR_RECORD");
  app.add_option("--history", o.history, "events kept in memory for resume")
      ->capture_default_str();
  app.add_option("--max-queue-bytes", o.max_queue_bytes,
                 "per-connection send queue before closing a slow consumer")
      ->capture_default_str()->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 40));
  app.add_option("--max-connections", o.max_connections,
                 "open connections (HTTP and WebSocket) before new ones get 503")
      ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{1000000}));
  app.add_option("--listen-backlog", o.listen_backlog,
                 "pending connections the kernel queues before accept (capped by net.core.somaxconn)")
      ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{65535}));
  app.add_option("--max-header-bytes", o.max_header_bytes,
                 "request line + headers before 431")
      ->capture_default_str()->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 20));
  app.add_option("--handshake-timeout-ms", o.handshake_timeout_ms,
                 "time a new connection (or a started request) has to complete its request")
      ->capture_default_str()->check(CLI::Range(uint64_t{100}, uint64_t{3600000}));
  app.add_option("--idle-timeout-ms", o.idle_timeout_ms,
                 "time an HTTP keep-alive connection may wait for its next request")
      ->capture_default_str()->check(CLI::Range(uint64_t{100}, uint64_t{86400000}));
  app.add_option("--ping-interval-ms", o.ping_interval_ms,
                 "WebSocket ping interval; two unanswered pings close with 1002")
      ->capture_default_str()->check(CLI::Range(uint64_t{100}, uint64_t{3600000}));
  app.add_option("--max-subscriptions", o.max_subscriptions,
                 "subscriptions one WebSocket connection may hold")
      ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{100000}));
  app.add_option("--max-filter-values", o.max_filter_values,
                 "values in one filter list (job_type, status) of a subscribe")
      ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{65536}));
  app.add_option("--max-filter-bytes", o.max_filter_bytes,
                 "bytes of all the strings of one subscribe's filter")
      ->capture_default_str()->check(CLI::Range(uint64_t{64}, uint64_t{65536}));
  app.add_option("--resume-entries-per-pass", o.resume_entries_per_pass,
                 "history entries resumes (since) may walk per loop pass, all connections together")
      ->capture_default_str()->check(CLI::Range(uint64_t{64}, uint64_t{10000000}));
  app.add_option("--max-held-events", o.max_held_events,
                 "live events one subscription may hold while its snapshot or database resume is handed out")
      ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{10000000}));
  app.add_option("--max-resume-rows", o.max_resume_rows,
                 "events read from the database for resumes, held in memory over all connections")
      ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  app.add_option("--max-conflated-jobs", o.max_conflated_jobs,
                 "jobs whose newest event a conflating connection may have waiting before 1013")
      ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{10000000}));
  app.add_flag("--no-scheduler", o.no_scheduler, "this replica never ticks");
  app.add_flag("--allow-user-actions", o.allow_user_actions,
               "users (unprivileged tokens) may act on their own jobs (retry, cancel, ...)");
  app.add_option("--max-history-events", o.max_history_events,
                 "events in one answer to a job's `history` request")
      ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{100000}));
  app.add_option("--counts-refresh-s", o.counts_refresh_s,
                 "read the totals by status and job type again this often while a dashboard watches them "
                 "(0: only at start and after reconnects)")
      ->capture_default_str()->check(CLI::Range(uint64_t{0}, uint64_t{86400}));
  app.add_option("--max-reads-per-connection", o.max_reads_per_connection,
                 "database reads (resume, snapshot) one connection may have outstanding")
      ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{64}));
  app.add_option("--max-database-reads", o.max_database_reads,
                 "database reads for clients outstanding in all, before new ones are refused")
      ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{100000}));
  app.add_option("--read-timeout-ms", o.read_timeout_ms,
                 "statement_timeout of a database read made for a client")
      ->capture_default_str()->check(CLI::Range(uint64_t{100}, uint64_t{3600000}));
  app.add_option("--migrate-lock-timeout-ms", o.migrate_lock_timeout_ms,
                 "migrate: how long to wait for another migrate to finish")
      ->capture_default_str()->check(CLI::Range(uint64_t{0}, uint64_t{86400000}));
  app.add_flag("--accept-unsigned-payloads", o.accept_unsigned_payloads,
               "pass unsigned payloads on the channel (a user's own trigger) on as foreign "
               "payloads; anyone who can connect to the database can then inject them");
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error, critical, off")
      ->envname("REACTOR_LOG_LEVEL")->capture_default_str()
      ->check(CLI::IsMember(std::vector<std::string>(std::begin(kLevels), std::end(kLevels))));

  std::vector<std::string> job_types, statuses;
  app.add_option("--replay", o.replay_file, "replay a journal to stdout (and --listen)");
  app.add_option("--speed", o.speed, "replay pacing: 1 = as recorded, 0 = no pauses")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--from", o.from_id, "replay: first event id");
  app.add_option("--to", o.to_id, "replay: last event id");
  app.add_option("--job-type", job_types, "replay filter: job types (comma separated)");
  app.add_option("--status", statuses, "replay filter: statuses (comma separated)");
  app.add_option("--user-id", o.user_id, "replay filter: user id");
  app.add_option("--job-id", o.job_id, "replay filter: job id");

  auto* serve = app.add_subcommand("serve", "run the daemon (the default)");
  auto* migrate = app.add_subcommand("migrate", "apply the SQL migrations, then exit");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    o.command = Command::kExit;
    o.exit_code = app.exit(e) == 0 ? 0 : 2;
    return o;
  }

  auto usage = [&o](const std::string& msg) {
    std::cerr << "reactor: " << msg << "\n";
    o.command = Command::kExit;
    o.exit_code = 2;
    return o;
  };
  if (!listen.empty()) {
    auto hp = ParseHostPort(listen);
    if (!hp) return usage("--listen: " + hp.error());
    o.listen = *hp;
    o.listen_given = true;
  }
  if (!metrics_listen.empty()) {
    auto hp = ParseHostPort(metrics_listen);
    if (!hp) return usage("--metrics-listen: " + hp.error());
    o.metrics_listen = *hp;
  }
  o.job_types = SplitCommas(job_types);
  o.statuses = SplitCommas(statuses);
  auto origins = ParseAllowedOrigins(SplitCommas(allowed_origins));
  if (!origins) return usage("--allowed-origins: " + origins.error());
  o.allowed_origins = std::move(*origins);
  auto hosts = ParsePublicHosts(SplitCommas(public_hosts));
  if (!hosts) return usage("--public-host: " + hosts.error());
  o.public_hosts = SplitCommas(public_hosts);
  if (o.jwt_secret.empty() && !o.jwt_audience.empty()) return usage("--jwt-audience needs --jwt-secret");
  if (o.jwt_secret.empty() && !o.jwt_issuer.empty()) return usage("--jwt-issuer needs --jwt-secret");

  auto open_listen = [&o] {
    return o.jwt_secret.empty() && !o.allow_anonymous && !IsLoopbackHost(o.listen.host);
  };
  const std::string open_listen_msg =
      "--listen " + o.listen.host +
      " is not loopback and no --jwt-secret is set; pass --allow-anonymous to serve every event "
      "to anyone who connects";
  if (!o.replay_file.empty()) {
    if (serve->parsed() || migrate->parsed()) return usage("--replay cannot be combined with a command");
    if (o.listen_given && open_listen()) return usage(open_listen_msg);
    o.command = Command::kReplay;
    return o;
  }
  o.command = migrate->parsed() ? Command::kMigrate : Command::kServe;
  if (o.database_url.empty()) {
    return usage("no database: set --database-url or DATABASE_URL");
  }
  if (o.command == Command::kServe && open_listen()) return usage(open_listen_msg);
  return o;
}

}  // namespace reactor
