// `reactor migrate`: applies the migrations compiled into the binary.
//
// Each migration runs in its own transaction and is recorded, with the SHA-256 of its
// text, in reactor.schema_migrations. A session-level advisory lock serializes
// concurrent runs: the second waits, then finds nothing left to do. An applied migration
// whose text differs from the binary's is an error (nothing is applied then).
//
// This is a start-up/one-shot command: it uses blocking libpq calls and must never run
// on the serving loop.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/defaults.h"
#include "core/embedded.h"
#include "core/status.h"

namespace reactor::pg {

struct MigrateReport {
  int applied = 0;       // migrations applied by this run
  int already = 0;       // migrations found applied with a matching checksum
};

// Version number from a name such as "012_add_things.sql"; -1 when it has none.
int MigrationVersion(std::string_view name);

// Hex SHA-256 of the text.
std::string Sha256Hex(std::string_view text);

// Serialised with other migrates on pg::kMigrateLockKey (not the scheduler's leader lock:
// a serving replica never holds it). Waits at most `lock_timeout_ms` for another migrate,
// saying who holds the lock, then fails.
// REQUIRES: `migrations` sorted by version, versions unique.
Result<MigrateReport> Migrate(const std::string& conninfo,
                              std::span<const EmbeddedFile> migrations,
                              uint64_t lock_timeout_ms = defaults::kMigrateLockTimeoutMs);

}  // namespace reactor::pg
