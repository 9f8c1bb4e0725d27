#include "pg/migrate.h"

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <map>
#include <memory>

#include "pg/conninfo.h"

namespace reactor::pg {
namespace {

// Arbitrary but fixed: every reactor binary serializes its migrations on this key.
constexpr const char* kLockKey = "7212853350187139073";

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
                              std::span<const EmbeddedFile> migrations) {
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
  std::string lock = std::string("SELECT pg_advisory_lock(") + kLockKey + ")";
  if (auto s = Exec(conn.get(), lock.c_str()); !s) return Status::Error("advisory lock: " + s.message());

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
  (void)Exec(conn.get(), "SELECT pg_advisory_unlock_all()");
  return report;
}

}  // namespace reactor::pg
