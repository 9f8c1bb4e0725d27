// `reactor serve`: one thread, one libuv loop. Wires the PostgreSQL connection, the
// delivery sequencer and every consumer of the event stream; handles signals.
#pragma once

#include "app/options.h"

namespace reactor {

// Runs until SIGINT/SIGTERM (returns 0) or a fatal start-up error (returns 1).
int RunServe(const Options& options);

}  // namespace reactor
