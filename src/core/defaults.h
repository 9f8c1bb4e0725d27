// Every default a user can change with a flag, defined once: the command line
// (app/options.h) and the components' own configs start from these. Pure.
#pragma once

#include <cstdint>

namespace reactor::defaults {

inline constexpr const char* kChannel = "job_status_changed";
inline constexpr uint16_t kListenPort = 8080;
// Subscribers
inline constexpr uint64_t kHistory = 100000;             // events kept for resume
inline constexpr uint64_t kMaxQueueBytes = 1048576;      // per connection, every byte queued
inline constexpr uint64_t kMaxSubscriptions = 64;        // per connection
inline constexpr uint64_t kMaxFilterValues = 256;        // per filter list
inline constexpr uint64_t kMaxFilterBytes = 4096;        // per filter
inline constexpr uint64_t kResumeEntriesPerPass = 4096;  // history entries per loop pass, in all
inline constexpr uint64_t kMaxHeldEvents = 10000;        // held per subscription while it ends pending
inline constexpr uint64_t kMaxResumeRows = 200000;       // database resume rows in memory, in all
inline constexpr uint64_t kMaxConflatedJobs = 10000;     // per conflating connection
inline constexpr uint64_t kMaxHistoryEvents = 500;       // events in one `history` answer
inline constexpr uint64_t kCountsIntervalMs = 200;       // at most 5 `counts` messages a second
inline constexpr uint64_t kCountsRefreshMs = 300000;     // totals re-read every 5 minutes while watched
// Listener
inline constexpr uint64_t kMaxConnections = 100000;  // ~2.5 KB each when idle
inline constexpr uint64_t kListenBacklog = 4096;
inline constexpr uint64_t kMaxHeaderBytes = 8192;
inline constexpr uint64_t kHandshakeTimeoutMs = 10000;
inline constexpr uint64_t kIdleTimeoutMs = 60000;
inline constexpr uint64_t kPingIntervalMs = 25000;
// Tokens
inline constexpr int64_t kJwtLeewayS = 30;
// Database reads for clients
inline constexpr uint64_t kMaxReadsPerConnection = 2;
inline constexpr uint64_t kMaxDatabaseReads = 256;
inline constexpr uint64_t kReadTimeoutMs = 30000;
// reactor migrate
inline constexpr uint64_t kMigrateLockTimeoutMs = 60000;

}  // namespace reactor::defaults
