// Connection strings: defaults the reactor adds, and a password-free description for logs.
// Pure functions over strings (libpq's parser only; no connection is made).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace reactor::pg {

// Keyword/value pairs ready for PQconnectdbParams/PQconnectStartParams with
// expand_dbname = 1. The reactor's defaults come first so that anything the user wrote
// in the URL or conninfo overrides them.
struct ConnParams {
  std::vector<std::string> keywords;
  std::vector<std::string> values;
  // Pointer arrays (NULL-terminated) into the strings above; valid while *this lives
  // unmoved.
  std::vector<const char*> keyword_ptrs() const;
  std::vector<const char*> value_ptrs() const;
};

enum class ConnPurpose {
  kMigrate,  // short-lived, fails fast
  kServe,    // long-lived: TCP keepalives and tcp_user_timeout so half-open links surface
};

// Fails when the string is not a valid libpq URI or key=value conninfo.
Result<ConnParams> MakeConnParams(const std::string& conninfo, ConnPurpose purpose);

// "user@host:port/dbname" with no password, for log lines. Never fails: an unparsable
// string is described as "(invalid conninfo)".
std::string DescribeConnInfo(const std::string& conninfo);

}  // namespace reactor::pg
