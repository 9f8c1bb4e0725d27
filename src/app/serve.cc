#include "app/serve.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <chrono>
#include <memory>

#include "core/rate_limit.h"
#include "core/sequencer.h"
#include "journal/journal.h"
#include "pg/pg_connection.h"
#include "sched/scheduler.h"

namespace reactor {
namespace {

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Server {
 public:
  Server(uv_loop_t* loop, const Options& o)
      : loop_(loop),
        options_(o),
        sequencer_([this](Event&& ev) { OnEvent(std::move(ev)); },
                   [this](int64_t id) { conn_->Fetch(id); }),
        parse_log_(10000) {
    pg::ConnectionConfig cfg;
    cfg.conninfo = o.database_url;
    cfg.channel = o.channel;
    conn_ = std::make_unique<pg::PgConnection>(loop_, cfg, sequencer_);
    conn_->set_batch_observer([this] { OnBatch(); });
    if (!o.record_file.empty()) {
      journal_ = std::make_unique<journal::Journal>(loop_, o.record_file);
    }

    // Scheduler (src/sched): deadline timer on this connection, leader election on its own.
    sched::SchedulerConfig sched_cfg;
    sched_cfg.enabled = !o.no_scheduler;
    sched_cfg.lock.conninfo = o.database_url;
    scheduler_ = std::make_unique<sched::Scheduler>(loop_, sched_cfg, *conn_);
    conn_->set_state_observer([this](pg::PgConnection::State s, const std::string&) {
      scheduler_->OnConnectionState(s);
    });

    for (auto* s : {&sigint_, &sigterm_, &sighup_}) {
      uv_signal_init(loop_, s);
      s->data = this;
    }
  }

  Status Start() {
    if (journal_) {
      if (Status s = journal_->Open(); !s) {
        Stop("cannot record");  // closes what the constructor opened; the loop runs it
        return s;
      }
      journal_open_ = true;
    }
    uv_signal_start(&sigint_, SignalCb, SIGINT);
    uv_signal_start(&sigterm_, SignalCb, SIGTERM);
    uv_signal_start(&sighup_, SignalCb, SIGHUP);
    conn_->Start();
    scheduler_->Start();
    return Status::Ok();
  }

 private:
  void OnEvent(Event&& ev) {
    int64_t now = UnixMillis();
    spdlog::trace("event {} {} {} {}", ev.id, ev.kind, ev.job_id, ev.status);
    // Here, where the sequencer releases it, is the delivery order the journal records.
    if (journal_) journal_->Append(now, ev.json);
    scheduler_->OnEvent(ev);
  }

  void OnBatch() {
    if (journal_open_) journal_->Flush();  // the batch's lines in one write, at once
    uint64_t errors = sequencer_.stats().parse_errors;
    if (errors != parse_errors_logged_) {
      uint64_t suppressed = 0;
      if (parse_log_.Allow(uv_now(loop_), &suppressed)) {
        spdlog::warn("dropped a payload on channel {}: {} ({} dropped in all{})", options_.channel,
                     sequencer_.last_parse_error(), errors,
                     suppressed ? ", " + std::to_string(suppressed) + " not logged" : "");
      }
      parse_errors_logged_ = errors;
    }
  }

  static void SignalCb(uv_signal_t* s, int signum) {
    auto* self = static_cast<Server*>(s->data);
    if (signum == SIGHUP) {
      spdlog::info("SIGHUP: reopening files");
      if (self->journal_) self->journal_->Reopen();
      return;
    }
    self->Stop(signum == SIGINT ? "SIGINT" : "SIGTERM");
  }

  void Stop(const char* why) {
    if (stopping_) return;
    stopping_ = true;
    spdlog::info("stopping ({})", why);
    // The scheduler first: it gives up leadership while the event connection still runs.
    scheduler_->Close([this] {
      conn_->Close([this] {
        // The connection delivers nothing more: the journal can write its last lines.
        auto close_signals = [this] {
          for (auto* s : {&sigint_, &sigterm_, &sighup_}) {
            uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
          }
        };
        if (journal_open_) {
          journal_->Close(close_signals);
        } else {
          close_signals();
        }
      });
    });
  }

  uv_loop_t* loop_;
  const Options& options_;
  DeliverySequencer sequencer_;
  std::unique_ptr<pg::PgConnection> conn_;
  std::unique_ptr<journal::Journal> journal_;  // --record
  bool journal_open_ = false;
  std::unique_ptr<sched::Scheduler> scheduler_;  // after conn_: destroyed before it
  uv_signal_t sigint_, sigterm_, sighup_;
  bool stopping_ = false;
  RateLimiter parse_log_;
  uint64_t parse_errors_logged_ = 0;
};

}  // namespace

int RunServe(const Options& options) {
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  int code = 0;
  {
    Server server(&loop, options);
    if (auto st = server.Start(); !st) {
      spdlog::error("{}", st.message());
      code = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);  // after a failed start, this runs the closes
  }
  if (uv_loop_close(&loop) != 0) {
    spdlog::error("internal: handles left open at exit");
    code = code ? code : 1;
  }
  return code;
}

}  // namespace reactor
