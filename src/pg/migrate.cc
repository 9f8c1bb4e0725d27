#include "pg/migrate.h"

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <thread>
#include <map>
#include <memory>

#include "pg/conninfo.h"
#include "pg/store.h"

namespace reactor::pg {
namespace {


struct ConnFree {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultFree {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Conn = std::unique_ptr<PGconn, ConnFree>;
using Res = std::unique_ptr<PGresult, ResultFree>;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The server's message, with the line of the migration it points at when it gives one.
std::string DescribeError(PGconn* conn, PGresult* res, std::string_view sql) {
  if (!res) return Trim(PQerrorMessage(conn));
  std::string msg = Trim(PQresultErrorMessage(res));
  if (const char* pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION)) {
    // Position counts characters from 1; the migrations are ASCII.
    size_t p = static_cast<size_t>(std::atol(pos));
    if (p > 0 && p <= sql.size()) {
      size_t line = 1;
      for (size_t i = 0; i + 1 < p; ++i) line += sql[i] == '\n';
      msg += " (at line " + std::to_string(line) + ")";
    }
  }
  return msg;
}

Status Exec(PGconn* conn, const char* sql) {
  Res r(PQexec(conn, sql));
  auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  // A file of comments only is an empty query: nothing to do, not an error.
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
    return Status::Error(DescribeError(conn, r.get(), sql));
  }
  return Status::Ok();
}

// Who holds `key` (pid, application, address, since when), for the waiting message.
std::string LockHolder(PGconn* conn, int64_t key) {
  const std::string k = std::to_string(key);
  const char* args[] = {k.c_str()};
  Res r(PQexecParams(conn,
                     "SELECT a.pid::text, coalesce(nullif(a.application_name, ''), '?'), "
                     "       coalesce(host(a.client_addr), 'local'), "
                     "       to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                     "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                     "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                     "  AND l.classid = (($1::bigint >> 32) & 4294967295)::oid "
                     "  AND l.objid = ($1::bigint & 4294967295)::oid LIMIT 1",
                     1, nullptr, args, nullptr, nullptr, 0));
  if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) == 0) return "another session";
  return std::string("backend pid ") + PQgetvalue(r.get(), 0, 0) + " (" + PQgetvalue(r.get(), 0, 1) + " from " +
         PQgetvalue(r.get(), 0, 2) + ", connected since " + PQgetvalue(r.get(), 0, 3) + ")";
}

// Takes the migrate lock, polling pg_try_advisory_lock: a CLI may block, but not forever.
Status TakeMigrateLock(PGconn* conn, uint64_t timeout_ms) {
  const std::string sql = "SELECT pg_try_advisory_lock(" + std::to_string(kMigrateLockKey) + ")";
  const auto start = std::chrono::steady_clock::now();
  bool told = false;
  for (;;) {
    Res r(PQexec(conn, sql.c_str()));
    if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      return Status::Error("advisory lock: " + DescribeError(conn, r.get(), ""));
    }
    if (std::string_view(PQgetvalue(r.get(), 0, 0)) == "t") return Status::Ok();
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    if (static_cast<uint64_t>(waited.count()) >= timeout_ms) {
      return Status::Error("another migrate holds the migration lock (advisory lock " +
                           std::to_string(kMigrateLockKey) + ", " + LockHolder(conn, kMigrateLockKey) +
                           "); gave up after " + std::to_string(timeout_ms) + " ms (--migrate-lock-timeout-ms)");
    }
    if (!told) {
      spdlog::info("waiting for the migration lock, held by {}", LockHolder(conn, kMigrateLockKey));
      told = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace

int MigrationVersion(std::string_view name) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), v);
  if (ec != std::errc() || ptr == name.data() || ptr == name.data() + name.size() || *ptr != '_') {
    return -1;
  }
  return v;
}

std::string Sha256Hex(std::string_view text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

Result<MigrateReport> Migrate(const std::string& conninfo,
                              std::span<const EmbeddedFile> migrations, uint64_t lock_timeout_ms) {
  auto params = MakeConnParams(conninfo, ConnPurpose::kMigrate);
  if (!params) return params.status();
  auto kw = params->keyword_ptrs();
  auto vals = params->value_ptrs();
  Conn conn(PQconnectdbParams(kw.data(), vals.data(), 1));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    return Status::Error("cannot connect to " + DescribeConnInfo(conninfo) + ": " +
                         Trim(conn ? PQerrorMessage(conn.get()) : "out of memory"));
  }
  if (auto s = Exec(conn.get(), "SET client_min_messages = warning"); !s) return s;
  if (auto s = TakeMigrateLock(conn.get(), lock_timeout_ms); !s) return s;

  if (auto s = Exec(conn.get(),
                    "CREATE SCHEMA IF NOT EXISTS reactor;"
                    "CREATE TABLE IF NOT EXISTS reactor.schema_migrations ("
                    "  version integer PRIMARY KEY,"
                    "  name text NOT NULL,"
                    "  checksum text NOT NULL,"
                    "  applied_at timestamptz NOT NULL DEFAULT now())");
      !s) {
    return Status::Error("creating reactor.schema_migrations: " + s.message());
  }

  std::map<int, std::pair<std::string, std::string>> applied;  // version -> (name, checksum)
  {
    Res r(PQexec(conn.get(), "SELECT version, name, checksum FROM reactor.schema_migrations"));
    if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      return Status::Error("reading reactor.schema_migrations: " +
                           DescribeError(conn.get(), r.get(), ""));
    }
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      applied[std::atoi(PQgetvalue(r.get(), i, 0))] = {PQgetvalue(r.get(), i, 1),
                                                       PQgetvalue(r.get(), i, 2)};
    }
  }

  // Verify everything before changing anything.
  MigrateReport report;
  for (const auto& m : migrations) {
    int v = MigrationVersion(m.name);
    auto it = applied.find(v);
    if (it == applied.end()) continue;
    std::string sum = Sha256Hex(m.data);
    if (it->second.second != sum) {
      return Status::Error("migration " + std::string(m.name) +
                           " was changed after it was applied (database has checksum " +
                           it->second.second.substr(0, 12) + "…, this binary " +
                           sum.substr(0, 12) + "…); write a new migration instead");
    }
    ++report.already;
  }
  int newest_known = migrations.empty() ? 0 : MigrationVersion(migrations.back().name);
  if (!applied.empty() && applied.rbegin()->first > newest_known) {
    spdlog::warn("the database has migration {} ({}), newer than this binary knows",
                 applied.rbegin()->first, applied.rbegin()->second.first);
  }

  for (const auto& m : migrations) {
    int v = MigrationVersion(m.name);
    if (applied.count(v)) continue;
    std::string text(m.data);
    if (auto s = Exec(conn.get(), "BEGIN"); !s) return s;
    if (auto s = Exec(conn.get(), text.c_str()); !s) {
      (void)Exec(conn.get(), "ROLLBACK");
      return Status::Error("migration " + std::string(m.name) + " failed: " + s.message());
    }
    std::string sum = Sha256Hex(m.data);
    std::string ver = std::to_string(v);
    std::string name(m.name);
    const char* args[] = {ver.c_str(), name.c_str(), sum.c_str()};
    Res r(PQexecParams(conn.get(),
                       "INSERT INTO reactor.schema_migrations (version, name, checksum) "
                       "VALUES ($1, $2, $3)",
                       3, nullptr, args, nullptr, nullptr, 0));
    if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      std::string err = DescribeError(conn.get(), r.get(), "");
      (void)Exec(conn.get(), "ROLLBACK");
      return Status::Error("recording migration " + name + ": " + err);
    }
    if (auto s = Exec(conn.get(), "COMMIT"); !s) {
      return Status::Error("migration " + name + " failed at commit: " + s.message());
    }
    spdlog::info("applied migration {}", name);
    ++report.applied;
  }
  (void)Exec(conn.get(), ("SELECT pg_advisory_unlock(" + std::to_string(kMigrateLockKey) + ")").c_str());
  return report;
}

}  // namespace reactor::pg
