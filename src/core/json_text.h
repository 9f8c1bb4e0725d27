// JSON string literals (quotes included) with the escapes JSON requires. Pure.
#pragma once

#include <string>
#include <string_view>

namespace reactor {

void AppendJsonString(std::string& out, std::string_view s);
inline std::string JsonString(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  AppendJsonString(out, s);
  return out;
}

}  // namespace reactor
