#include "pg/libpq_util.h"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

namespace reactor::pg {
namespace {

void NoticeProcessor(void* arg, const char* message) {
  spdlog::info("{}: {}", static_cast<const char*>(arg), OneLine(message));
}

}  // namespace

std::string OneLine(const char* message) {
  std::string out;
  bool space = false;
  for (const char* p = message ? message : ""; *p; ++p) {
    if (*p == '\n' || *p == '\t' || *p == ' ' || *p == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += *p;
  }
  return out;
}

void LogNotices(pg_conn* conn, const char* prefix) {
  // REQUIRES: `prefix` outlives the connection (libpq keeps the pointer).
  PQsetNoticeProcessor(conn, NoticeProcessor, const_cast<char*>(prefix));
}

}  // namespace reactor::pg
