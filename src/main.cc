// reactor: CLI and wiring only. Everything with behaviour lives in src/<area>/.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "app/options.h"
#include "app/serve.h"
#include "core/embedded.h"
#include "app/replay_cli.h"
#include "pg/conninfo.h"
#include "pg/migrate.h"

namespace {

void SetUpLogging(const std::string& level) {
  auto logger = spdlog::stderr_logger_st("reactor");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(level));
}

int RunMigrate(const reactor::Options& o) {
  spdlog::info("migrating {}", reactor::pg::DescribeConnInfo(o.database_url));
  auto r = reactor::pg::Migrate(o.database_url, reactor::embedded::migrations, o.migrate_lock_timeout_ms);
  if (!r) {
    spdlog::error("migrate: {}", r.error());
    return 1;
  }
  if (r->applied == 0) {
    spdlog::info("migrate: up to date ({} migrations applied before)", r->already);
  } else {
    spdlog::info("migrate: applied {} migration(s), {} were already applied", r->applied,
                 r->already);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  reactor::Options o = reactor::ParseOptions(argc, argv);
  if (o.command == reactor::Command::kExit) return o.exit_code;
  SetUpLogging(o.log_level);
  switch (o.command) {
    case reactor::Command::kMigrate:
      return RunMigrate(o);
    case reactor::Command::kServe:
      return reactor::RunServe(o);
    case reactor::Command::kReplay:
      return reactor::RunReplay(o);
    case reactor::Command::kExit:
      break;
  }
  spdlog::error("this command is not available in this build yet");
  return 1;
}
