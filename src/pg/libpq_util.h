// Small libpq functions shared by the reactor's connections (the event connection and the
// scheduler's lock connection). Pure apart from what libpq itself does.
#pragma once

#include <string>

struct pg_conn;

namespace reactor::pg {

// libpq's messages span lines and end in a newline; a log line is one line. Runs of
// whitespace become one space. `message` may be null.
std::string OneLine(const char* message);

// Routes the server's NOTICE/WARNING messages on `conn` to the log (info), one line each,
// with `prefix` before them (e.g. "postgres says"). REQUIRES: `prefix` outlives `conn`.
void LogNotices(pg_conn* conn, const char* prefix);

}  // namespace reactor::pg
