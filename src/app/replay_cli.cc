#include "app/replay_cli.h"

#include <uv.h>

#include <cassert>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>

#include <memory>

#include "app/frontend.h"
#include "journal/replay.h"

namespace reactor {
using journal::Replayer;
using journal::ReplayConfig;
namespace {

struct Run {
  uv_loop_t loop{};
  bool paced = false;
  bool out_broken = false;  // stdout failed: nothing more is written
  int out_errno = 0;
  int code = 0;
  Replayer* replayer = nullptr;
  bool closing = false;

  void CloseReplayer() {
    if (closing) return;
    closing = true;
    replayer->Close([] {});
  }

  // False once stdout is gone; the caller stops the replay.
  bool Write(const std::string& json) {
    if (out_broken) return false;
    bool ok = std::fwrite(json.data(), 1, json.size(), stdout) == json.size() &&
              std::fputc('\n', stdout) != EOF;
    // A paced replay is watched live: every event goes out when it is due.
    if (ok && paced) ok = std::fflush(stdout) == 0;
    if (!ok) {
      out_broken = true;
      out_errno = errno;
    }
    return ok;
  }
};

void ReportStdout(int err, int* code) {
  // A reader that has seen enough (`| head -1`) is not an error.
  if (err == EPIPE) return;
  std::fprintf(stderr, "reactor: writing to stdout: %s\n", std::strerror(err));
  *code = 1;
}

}  // namespace

int RunReplay(const Options& o) {
  assert(o.command == Command::kReplay);
  std::signal(SIGPIPE, SIG_IGN);

  ReplayConfig config;
  config.file = o.replay_file;
  config.speed = o.speed;
  config.from_id = o.from_id;
  config.to_id = o.to_id;
  config.filter.job_id = o.job_id;
  config.filter.user_id = o.user_id;
  config.filter.job_types = o.job_types;
  config.filter.statuses = o.statuses;

  Run run;
  run.paced = o.speed > 0;
  if (int r = uv_loop_init(&run.loop); r < 0) {
    std::fprintf(stderr, "reactor: cannot start the event loop: %s\n", uv_strerror(r));
    return 1;
  }

  // With --listen the replayed stream is also served over WebSocket exactly as live (the
  // same hub, the same frames). Serving goes on after the file ends, so that clients can
  // still connect and resume (`since`) from the in-memory history, until SIGINT/SIGTERM.
  std::unique_ptr<Frontend> frontend;
  uv_signal_t sigint{}, sigterm{};
  bool served = false;
  auto stop_serving = [&] {
    if (!frontend || !served) return;
    served = false;
    frontend->Close([&] {
      uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
    });
  };
  if (o.listen_given) {
    Frontend::Deps deps;
    deps.mode = "replay";
    deps.ready = [] { return true; };  // the journal is the source: always "listening"
    frontend = std::make_unique<Frontend>(&run.loop, o, std::move(deps));
  }

  Replayer::Callbacks cb;
  cb.on_event = [&run, &frontend](const Event& ev, int64_t) {
    if (frontend) frontend->Publish(Event(ev));
    if (!run.Write(ev.json) && !frontend) run.CloseReplayer();
  };
  cb.on_error = [](const std::string& message) {
    std::fprintf(stderr, "%s\n", message.c_str());
  };
  cb.on_done = [&run, &frontend](int code) {
    run.code = code;
    run.CloseReplayer();
    if (!run.out_broken && std::fflush(stdout) != 0) {
      run.out_broken = true;
      run.out_errno = errno;
    }
    if (frontend) {
      spdlog::info("replay finished ({} events); still serving until SIGINT/SIGTERM",
                   run.replayer->stats().events);
    }
  };
  Replayer replayer(&run.loop, std::move(config), std::move(cb));
  run.replayer = &replayer;

  if (frontend) {
    if (Status s = frontend->Start(); !s) {
      std::fprintf(stderr, "reactor: %s\n", s.message().c_str());
      frontend->Close([] {});
      uv_run(&run.loop, UV_RUN_DEFAULT);
      int r = uv_loop_close(&run.loop);
      assert(r == 0);
      (void)r;
      return 1;
    }
    served = true;
    for (uv_signal_t* sig : {&sigint, &sigterm}) {
      uv_signal_init(&run.loop, sig);
      sig->data = &stop_serving;
    }
    auto on_signal = [](uv_signal_t* sig, int) { (*static_cast<decltype(stop_serving)*>(sig->data))(); };
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
  }

  if (Status s = replayer.Start(); !s) {
    std::fprintf(stderr, "reactor: %s\n", s.message().c_str());
    stop_serving();
    uv_run(&run.loop, UV_RUN_DEFAULT);
    int r = uv_loop_close(&run.loop);
    assert(r == 0);
    (void)r;
    return 1;
  }
  uv_run(&run.loop, UV_RUN_DEFAULT);
  int r = uv_loop_close(&run.loop);
  assert(r == 0);
  (void)r;

  if (run.out_broken) {
    // Stopped early: the status still says whether what was read had malformed lines.
    run.code = replayer.stats().malformed > 0 ? 1 : 0;
    ReportStdout(run.out_errno, &run.code);
  } else if (std::fflush(stdout) != 0) {
    ReportStdout(errno, &run.code);
  }
  return run.code;
}

}  // namespace reactor
