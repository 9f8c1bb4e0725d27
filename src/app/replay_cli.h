// `reactor --replay FILE` printing to stdout: each selected event's JSON, one per line;
// with --listen also served over WebSocket, the same frames as live.
#pragma once

#include "app/options.h"

namespace reactor {

// Runs the replay on a loop of its own and returns the exit status: 0, 1 when a line
// was malformed or the file could not be read, 2 for a usage error. Problems go to
// stderr; a reader that closes stdout early (`| head -1`) ends the replay quietly.
// Ignores SIGPIPE for the process (stdout errors are handled as values instead).
// REQUIRES: options.command == Command::kReplay.
int RunReplay(const Options& options);

}  // namespace reactor
