// ISO 8601 times in UTC, as the database writes them (reactor.iso_time, timestamptz as
// text), to and from Unix microseconds. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace reactor {

// "2026-11-21T06:30:00Z", "2026-11-21T06:30:00.012345Z" (1 to 9 fractional digits;
// beyond six they are truncated), also with "+00:00" or "+00" instead of "Z", or a space
// instead of the "T". Anything else — another offset, a missing zone, an impossible
// date — is nullopt: the reactor acts only on times it can read exactly. Years before
// 1970 give negative values.
std::optional<int64_t> ParseIsoUtc(std::string_view text);

// The inverse, always with six fractional digits: "2026-11-21T06:30:00.012345Z".
std::string FormatIsoUtc(int64_t unix_micros);

}  // namespace reactor
