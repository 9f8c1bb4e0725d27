#include "app/serve.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <uv.h>

#include <chrono>
#include <memory>

#include "app/frontend.h"
#include "core/rate_limit.h"
#include "core/sequencer.h"
#include "journal/journal.h"
#include "pg/client_reads.h"
#include "pg/pg_connection.h"
#include "sched/scheduler.h"

namespace reactor {
namespace {

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Daemon {
 public:
  Daemon(uv_loop_t* loop, const Options& o)
      : loop_(loop),
        options_(o),
        sequencer_([this](Event&& ev) { OnEvent(std::move(ev)); },
                   [this](int64_t id) { conn_->Fetch(id); }),
        parse_log_(10000),
        reject_log_(10000) {
    sequencer_.ConfigureNotifyAuth(o.channel, o.accept_unsigned_payloads);
    pg::ConnectionConfig cfg;
    cfg.conninfo = o.database_url;
    cfg.channel = o.channel;
    conn_ = std::make_unique<pg::PgConnection>(loop_, cfg, sequencer_);
    conn_->set_batch_observer([this] { OnBatch(); });
    pg::ClientReadsConfig rc;
    rc.conninfo = o.database_url;
    rc.max_per_owner = o.max_reads_per_connection;
    rc.max_total = o.max_database_reads;
    rc.statement_timeout_ms = o.read_timeout_ms;
    reads_ = std::make_unique<pg::PgClientReads>(loop_, rc);
    if (!o.record_file.empty()) {
      journal_ = std::make_unique<journal::Journal>(loop_, o.record_file);
    }
    Frontend::Deps deps;
    deps.ready = [this] { return conn_->ready(); };
    deps.metrics = [this](MetricsText& m) { Metrics(m); };
    deps.reads = reads_.get();
    deps.horizon = [this] { return sequencer_.horizon(); };
    frontend_ = std::make_unique<Frontend>(loop_, o, std::move(deps));

    // Scheduler (src/sched): deadline timer on this connection, leader election on its own.
    sched::SchedulerConfig sched_cfg;
    sched_cfg.enabled = !o.no_scheduler;
    // A clock reading 20 ms before each deadline: the tick then runs on a warm session.
    sched_cfg.ticker.plan.warm_lead_us = 20000;
    sched_cfg.lock.conninfo = o.database_url;
    scheduler_ = std::make_unique<sched::Scheduler>(loop_, sched_cfg, *conn_);
    conn_->set_state_observer([this](pg::PgConnection::State s, const std::string&) {
      scheduler_->SetConnected(s == pg::PgConnection::State::kReady);
      // Caught up after a (re)connect: the totals are read again (what no event reports,
      // such as deletes, may have changed meanwhile).
      if (s == pg::PgConnection::State::kReady) frontend_->hub().RefreshCounts();
    });

    for (auto* s : {&sigint_, &sigterm_, &sighup_}) {
      uv_signal_init(loop_, s);
      s->data = this;
    }
    // A catch-up of many rows leaves the sequencer a slice per loop pass (Pump).
    sequencer_.set_max_per_drain(kEventsPerPass);
    uv_idle_init(loop_, &pump_);
    pump_.data = this;
    uv_timer_init(loop_, &pump_wait_);
    pump_wait_.data = this;
  }

  Status Start() {
    if (journal_) {
      if (Status s = journal_->Open(); !s) {
        Stop("cannot record");  // closes what the constructor opened; the loop runs it
        return s;
      }
      journal_open_ = true;
    }
    if (Status s = frontend_->Start(); !s) {
      Stop("cannot listen");
      return s;
    }
    uv_signal_start(&sigint_, SignalCb, SIGINT);
    uv_signal_start(&sigterm_, SignalCb, SIGTERM);
    uv_signal_start(&sighup_, SignalCb, SIGHUP);
    conn_->Start();
    reads_->Start();
    scheduler_->Start();
    return Status::Ok();
  }

 private:
  void OnEvent(Event&& ev) {
    // Here, where the sequencer releases it, is the delivery order: the journal's and
    // every subscriber's. A scheduling doorbell is for the scheduler alone.
    scheduler_->OnEvent(ev);
    if (ev.is_doorbell()) return;
    if (journal_) journal_->Append(UnixMillis(), ev.json);
    frontend_->Publish(std::move(ev));
  }

  static constexpr size_t kEventsPerPass = 1000;

  // Hands the sequencer's backlog out a slice per loop pass, so that sockets and the
  // journal are written in between; waits while the journal's buffer is half full
  // rather than letting it drop lines.
  void SchedulePump() {
    if (stopping_ || !sequencer_.backlog() || uv_is_active(reinterpret_cast<uv_handle_t*>(&pump_))) return;
    uv_idle_start(&pump_, [](uv_idle_t* h) { static_cast<Daemon*>(h->data)->PumpOnce(); });
  }
  void PumpOnce() {
    if (journal_open_ && journal_->stats().bytes_buffered > journal::JournalLimits{}.max_buffer_bytes / 2) {
      journal_->Flush();
      uv_idle_stop(&pump_);
      uv_timer_start(&pump_wait_, [](uv_timer_t* t) { static_cast<Daemon*>(t->data)->SchedulePump(); }, 2, 0);
      return;
    }
    sequencer_.Pump();
    if (journal_open_) journal_->Flush();
    if (!sequencer_.backlog()) uv_idle_stop(&pump_);
  }

  void OnBatch() {
    SchedulePump();
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
    uint64_t rejected = 0;
    for (uint64_t n : sequencer_.stats().rejected) rejected += n;
    if (rejected != rejected_logged_) {
      uint64_t suppressed = 0;
      if (reject_log_.Allow(uv_now(loop_), &suppressed)) {
        spdlog::warn("rejected a notification on channel {}: {} ({} rejected in all{})", options_.channel,
                     sequencer_.last_reject(), rejected,
                     suppressed ? ", " + std::to_string(suppressed) + " not logged" : "");
      }
      rejected_logged_ = rejected;
    }
  }

  void Metrics(MetricsText& m) {
    conn_->WriteMetrics(m);
    reads_->WriteMetrics(m);
    sequencer_.WriteMetrics(m);
    if (journal_) journal_->WriteMetrics(m);
    sched::WriteSchedulerMetrics(scheduler_->metrics(), m);
  }

  static void SignalCb(uv_signal_t* s, int signum) {
    auto* self = static_cast<Daemon*>(s->data);
    if (signum == SIGHUP) {
      spdlog::info("SIGHUP: reopening files");
      if (self->journal_) self->journal_->Reopen();
      return;
    }
    self->Stop(signum == SIGINT ? "SIGINT" : "SIGTERM");
  }

  // Order: the scheduler gives up leadership (a standby takes over at once); subscribers
  // get their 1001 and go; the database connection closes (nothing more is delivered);
  // the journal writes its last lines; then the signal handles.
  void Stop(const char* why) {
    if (stopping_) return;
    stopping_ = true;
    spdlog::info("stopping ({})", why);
    uv_idle_stop(&pump_);
    uv_timer_stop(&pump_wait_);
    scheduler_->Close([this] {
      frontend_->Close([this] {
        reads_->Close([this] {
        conn_->Close([this] {
          auto close_signals = [this] {
            for (auto* s : {&sigint_, &sigterm_, &sighup_}) {
              uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
            }
            uv_close(reinterpret_cast<uv_handle_t*>(&pump_), nullptr);
            uv_close(reinterpret_cast<uv_handle_t*>(&pump_wait_), nullptr);
          };
          if (journal_open_) {
            journal_->Close(close_signals);
          } else {
            close_signals();
          }
        });
        });
      });
    });
  }

  uv_loop_t* loop_;
  const Options& options_;
  DeliverySequencer sequencer_;
  std::unique_ptr<pg::PgConnection> conn_;
  std::unique_ptr<pg::PgClientReads> reads_;  // resume and snapshot reads for clients
  std::unique_ptr<journal::Journal> journal_;  // --record
  bool journal_open_ = false;
  std::unique_ptr<Frontend> frontend_;
  std::unique_ptr<sched::Scheduler> scheduler_;  // after conn_: destroyed before it
  uv_signal_t sigint_, sigterm_, sighup_;
  uv_idle_t pump_;
  uv_timer_t pump_wait_;
  bool stopping_ = false;
  RateLimiter parse_log_;
  uint64_t parse_errors_logged_ = 0;
  RateLimiter reject_log_;
  uint64_t rejected_logged_ = 0;
};

// Every connection is a descriptor: the soft RLIMIT_NOFILE (often 1024) goes up to the hard
// limit, so that --max-connections, not EMFILE, is what bounds them.
void RaiseFileLimit(uint64_t max_connections) {
  constexpr uint64_t kReserve = 64;  // PostgreSQL sessions, the journal, the loop's own fds
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    spdlog::warn("open files: getrlimit failed; the limit stays as it is");
    return;
  }
  const rlim_t before = rl.rlim_cur;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = before;
  }
  auto show = [](rlim_t v) { return v == RLIM_INFINITY ? std::string("unlimited") : std::to_string(v); };
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < max_connections + kReserve) {
    spdlog::warn("open files: limit {} (was {}, hard {}) is below --max-connections {} + {}: connections "
                 "beyond about {} fail to be accepted; raise the hard limit (LimitNOFILE=, ulimit -Hn)",
                 show(rl.rlim_cur), show(before), show(rl.rlim_max), max_connections, kReserve,
                 rl.rlim_cur > kReserve ? rl.rlim_cur - kReserve : 0);
  } else {
    spdlog::info("open files: limit {} (was {}), --max-connections {}", show(rl.rlim_cur), show(before),
                 max_connections);
  }
}

}  // namespace

int RunServe(const Options& options) {
  signal(SIGPIPE, SIG_IGN);
  RaiseFileLimit(options.max_connections);
  uv_loop_t loop;
  uv_loop_init(&loop);
  int code = 0;
  {
    Daemon daemon(&loop, options);
    if (auto st = daemon.Start(); !st) {
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
