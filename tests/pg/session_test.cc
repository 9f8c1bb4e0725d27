// Loop tests of pg::Session and the client-read bounds against the real PostgreSQL that
// tools/test started (DATABASE_URL, PGSANDBOX_DIR). Real libuv, real sockets; each test
// closes every handle and ends with uv_loop_close() == 0.
#include "pg/session.h"

#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <uv.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "pg/client_reads.h"
#include "pg/queries.h"

using namespace reactor;
using namespace reactor::pg;

namespace {

std::string Url() {
  const char* u = std::getenv("DATABASE_URL");
  REQUIRE_MESSAGE(u, "run through tools/test (needs DATABASE_URL)");
  return u;
}

template <class Pred>
bool RunUntil(uv_loop_t* loop, Pred pred, uint64_t timeout_ms) {
  uv_timer_t guard;  // keeps uv_run(ONCE) from blocking past the timeout
  uv_timer_init(loop, &guard);
  uv_timer_start(&guard, [](uv_timer_t*) {}, 5, 5);
  const uint64_t end = uv_hrtime() + timeout_ms * 1000000;
  while (!pred() && uv_hrtime() < end) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return pred();
}

// A blocking side connection, as another client of the same server.
struct Side {
  PGconn* c;
  Side() : c(PQconnectdb(Url().c_str())) { REQUIRE(PQstatus(c) == CONNECTION_OK); }
  ~Side() { PQfinish(c); }
  std::string One(const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    std::string out = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : PQresultErrorMessage(r);
    PQclear(r);
    return out;
  }
};

struct Fixture {
  uv_loop_t loop;
  Session* s = nullptr;
  std::vector<std::string> reasons;  // of kBackoff

  explicit Fixture(SessionConfig c) {
    uv_loop_init(&loop);
    s = new Session(&loop, std::move(c));
    s->set_state_observer([this](Session::State st, const std::string& why) {
      if (st == Session::State::kBackoff) reasons.push_back(why);
    });
  }
  static SessionConfig Config(std::string name = "test") {
    SessionConfig c;
    c.conninfo = Url();
    c.name = std::move(name);
    c.application_name = "reactor-session-test";
    c.backoff_min_ms = 20;
    c.backoff_max_ms = 200;
    return c;
  }
  bool Ready(uint64_t ms = 5000) { return RunUntil(&loop, [this] { return s->ready(); }, ms); }
  // Runs `sql` and waits for its answer: the first value, or "ERR:" + the error.
  std::string Run(const std::string& sql, uint64_t ms = 5000) {
    std::string out;
    bool done = false;
    Status st = s->Submit(Session::Statement{sql, {}, [&](const pg_result* r, const std::string& e) {
      out = e.empty() ? (PQntuples(r) ? PQgetvalue(r, 0, 0) : "") : "ERR:" + e;
      done = true;
    }});
    if (!st) return "NOTSENT:" + st.message();
    RunUntil(&loop, [&] { return done; }, ms);
    return done ? out : "TIMEOUT";
  }
  void Finish() {
    bool closed = false;
    s->Close([&closed] { closed = true; });
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(closed);
    delete s;
    CHECK(uv_loop_close(&loop) == 0);
  }
};

}  // namespace

TEST_CASE("session: statements run in order, urgent ones first, one error convention") {
  Fixture f(Fixture::Config());
  // Not connected yet: refused, and the callback never runs.
  bool called = false;
  CHECK(!f.s->Submit(Session::Statement{"SELECT 1", {}, [&](const pg_result*, const std::string&) { called = true; }}));
  f.s->Start();
  REQUIRE(f.Ready());
  std::vector<std::string> order;
  auto rec = [&](std::string tag) {
    return [&order, tag](const pg_result* r, const std::string& e) {
      order.push_back(tag + "=" + (e.empty() ? std::string(PQgetvalue(r, 0, 0)) : "error"));
    };
  };
  REQUIRE(f.s->Submit(Session::Statement{"SELECT pg_sleep(0.05)::text || 'a'", {}, rec("a")}));
  REQUIRE(f.s->Submit(Session::Statement{"SELECT $1::text", {std::string("b")}, rec("b")}));
  REQUIRE(f.s->Submit(Session::Statement{"SELECT nonsense_column", {}, rec("c")}));
  Session::Statement urgent{"SELECT 'u'", {}, rec("u")};
  urgent.urgent = true;
  REQUIRE(f.s->Submit(std::move(urgent)));
  RunUntil(&f.loop, [&] { return order.size() == 4; }, 5000);
  // "a" was already sent; the urgent one overtakes what was still queued.
  CHECK(order == std::vector<std::string>{"a=a", "u=u", "b=b", "c=error"});
  CHECK(f.Run("SELECT 2") == "2");  // an error does not end the session
  CHECK(!called);
  f.Finish();
}

TEST_CASE("session: a refused connection is reported in libpq's words and retried") {
  auto c = Fixture::Config("refused");
  c.conninfo = "postgresql://127.0.0.1:1/x?connect_timeout=5";
  Fixture f(c);
  f.s->Start();
  RunUntil(&f.loop, [&] { return f.reasons.size() >= 2; }, 5000);
  REQUIRE(f.reasons.size() >= 2);  // retried after the backoff
  CHECK(f.reasons[0].find("Connection refused") != std::string::npos);
  CHECK(f.reasons[0].find("bad file descriptor") == std::string::npos);
  CHECK(f.s->stats().connect_failures >= 2);
  f.Finish();
}

TEST_CASE("session: a backend killed mid-statement fails that statement, then reconnects") {
  Fixture f(Fixture::Config());
  f.s->Start();
  REQUIRE(f.Ready());
  const int pid = f.s->backend_pid();
  std::string err;
  REQUIRE(f.s->Submit(Session::Statement{"SELECT pg_sleep(30)", {}, [&](const pg_result*, const std::string& e) { err = e; }}));
  RunUntil(&f.loop, [] { return false; }, 100);
  Side side;
  CHECK(side.One("SELECT pg_terminate_backend(" + std::to_string(pid) + ")") == "t");
  RunUntil(&f.loop, [&] { return !err.empty(); }, 5000);
  CHECK(err.find("connection lost") != std::string::npos);
  REQUIRE(f.Ready());
  CHECK(f.s->backend_pid() != pid);
  CHECK(f.Run("SELECT 'again'") == "again");
  CHECK(f.s->stats().reconnects == 1);
  f.Finish();
}

TEST_CASE("session: a statement timeout is that statement's error only") {
  Fixture f(Fixture::Config());
  f.s->Start();
  REQUIRE(f.Ready());
  CHECK(f.Run("SET statement_timeout = 200").empty());
  const std::string r = f.Run("SELECT pg_sleep(5)");
  CHECK(r.find("statement timeout") != std::string::npos);
  CHECK(f.s->ready());
  CHECK(f.Run("SELECT 'fine'") == "fine");
  f.Finish();
}

TEST_CASE("session: cancelling a queued statement and the one in flight") {
  Fixture f(Fixture::Config());
  f.s->Start();
  REQUIRE(f.Ready());
  std::string first, second;
  Session::Ticket t1 = 0, t2 = 0;
  REQUIRE(f.s->Submit(Session::Statement{"SELECT pg_sleep(30)", {}, [&](const pg_result*, const std::string& e) { first = "done:" + e; }}, &t1));
  REQUIRE(f.s->Submit(Session::Statement{"SELECT 1", {}, [&](const pg_result*, const std::string& e) { second = "done:" + e; }}, &t2));
  CHECK(f.s->Cancel(t2));
  CHECK(second == "done:cancelled");  // at once: it was never sent
  RunUntil(&f.loop, [] { return false; }, 100);
  const uint64_t start = uv_hrtime();
  CHECK(f.s->Cancel(t1));
  RunUntil(&f.loop, [&] { return !first.empty(); }, 5000);
  CHECK(first == "done:cancelled");
  CHECK((uv_hrtime() - start) / 1000000 < 5000);  // the server stopped; 30 s were not waited
  CHECK(!f.s->Cancel(t1));                        // already done
  CHECK(f.s->ready());
  CHECK(f.Run("SELECT 'after'") == "after");
  CHECK(f.s->stats().cancels == 2);
  f.Finish();
}

TEST_CASE("session: a server restart fails what was in flight, then the session is back") {
  const char* dir = std::getenv("PGSANDBOX_DIR");
  const char* root = std::getenv("REACTOR_ROOT");
  if (!dir || !root) {
    MESSAGE("PGSANDBOX_DIR/REACTOR_ROOT not set: skipping the restart");
    return;
  }
  Fixture f(Fixture::Config());
  f.s->Start();
  REQUIRE(f.Ready());
  std::string err;
  REQUIRE(f.s->Submit(Session::Statement{"SELECT pg_sleep(30)", {}, [&](const pg_result*, const std::string& e) { err = e; }}));
  RunUntil(&f.loop, [] { return false; }, 100);
  const std::string cmd = std::string(root) + "/tools/pg-sandbox restart " + dir + " >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  RunUntil(&f.loop, [&] { return !err.empty(); }, 10000);
  CHECK(!err.empty());
  REQUIRE(f.Ready(20000));
  CHECK(f.Run("SELECT 'restarted'") == "restarted");
  f.Finish();
}

TEST_CASE("session: silence brings a self-check; close fails what is queued") {
  auto c = Fixture::Config();
  c.silence_check_ms = 100;
  Fixture f(c);
  f.s->Start();
  REQUIRE(f.Ready());
  RunUntil(&f.loop, [&] { return f.s->stats().self_checks >= 2; }, 3000);
  CHECK(f.s->stats().self_checks >= 2);
  CHECK(f.s->ready());
  std::string err;
  REQUIRE(f.s->Submit(Session::Statement{"SELECT pg_sleep(30)", {}, [&](const pg_result*, const std::string& e) { err = e; }}));
  bool closed = false;
  f.s->Close([&closed] { closed = true; });
  CHECK(err == "shutting down");
  uv_run(&f.loop, UV_RUN_DEFAULT);
  CHECK(closed);
  delete f.s;
  CHECK(uv_loop_close(&f.loop) == 0);
}

TEST_CASE("client reads: bounded per connection and in all; a cancel frees the place") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ClientReadsConfig c;
  c.conninfo = Url();
  c.max_per_owner = 2;
  c.max_total = 3;
  c.statement_timeout_ms = 300;
  auto* reads = new PgClientReads(&loop, c);
  reads->Start();
  // The table does not exist here: each read answers with an error, which is fine; the
  // bounds are the subject. Reads asked while connecting wait for the session.
  std::vector<std::string> answers;
  auto cb = [&](Result<ResumeRows> r) { answers.push_back(r ? "ok" : r.error()); };
  auto a = reads->Resume(1, ResumeQuery{}, cb);
  auto b = reads->Resume(1, ResumeQuery{}, cb);
  auto over = reads->Resume(1, ResumeQuery{}, cb);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(!over);
  CHECK(over.error().find("already has 2") != std::string::npos);
  auto d = reads->Resume(2, ResumeQuery{}, cb);
  REQUIRE(d);
  auto full = reads->Resume(3, ResumeQuery{}, cb);
  CHECK(!full);
  CHECK(full.error().find("too many") != std::string::npos);
  reads->Cancel(*b);
  CHECK(answers == std::vector<std::string>{"cancelled"});
  CHECK(reads->outstanding() == 2);
  auto e = reads->Resume(1, ResumeQuery{}, cb);
  CHECK(e);
  RunUntil(&loop, [&] { return answers.size() == 4; }, 5000);
  CHECK(answers.size() == 4);
  CHECK(reads->outstanding() == 0);
  CHECK(reads->stats().refused_per_owner == 1);
  CHECK(reads->stats().refused_total == 1);
  bool closed = false;
  reads->Close([&closed] { closed = true; });
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(closed);
  delete reads;
  CHECK(uv_loop_close(&loop) == 0);
}
