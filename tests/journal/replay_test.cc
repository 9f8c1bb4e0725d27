#include <doctest/doctest.h>
#include <uv.h>

#include <cmath>
#include <string>
#include <vector>

#include "journal/journal.h"
#include "journal/journal_line.h"
#include "journal/replay.h"
#include "test_util.h"

using journal_test::TempDir;
using journal_test::WriteFile;
using reactor::Event;
using reactor::journal::FormatJournalLine;
using reactor::journal::Journal;
using reactor::journal::Pacer;
using reactor::journal::ReplayConfig;
using reactor::journal::Replayer;
using reactor::journal::Selected;

namespace {

std::string Ev(int id, const std::string& status = "running", const std::string& user = "u1",
               const std::string& type = "sync", const std::string& job = "j1") {
  return R"({"id":)" + std::to_string(id) + R"(,"kind":"status","job_id":")" + job +
         R"(","source":"scheduled_jobs","status":")" + status + R"(","user_id":")" + user +
         R"(","job_type":")" + type + R"("})";
}

Event Parsed(const std::string& json) {
  reactor::EventParser p;
  auto r = p.Parse(json);
  REQUIRE(r);
  return *r;
}

// Replays `config` on a fresh loop and collects what came out.
struct Outcome {
  std::vector<std::string> events;
  std::vector<int64_t> times;
  std::vector<std::string> errors;
  int code = -1;
  bool closed = false;
  reactor::journal::ReplayStats stats;
};

Outcome Replay(ReplayConfig config, size_t stop_after = SIZE_MAX) {
  Outcome out;
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    Replayer* self = nullptr;
    Replayer::Callbacks cb;
    cb.on_event = [&](const Event& ev, int64_t t) {
      out.events.push_back(ev.json);
      out.times.push_back(t);
      if (out.events.size() == stop_after) self->Close([&] { out.closed = true; });
    };
    cb.on_error = [&](const std::string& m) { out.errors.push_back(m); };
    cb.on_done = [&](int code) {
      out.code = code;
      self->Close([&] { out.closed = true; });
    };
    Replayer r(&loop, std::move(config), std::move(cb));
    self = &r;
    REQUIRE(r.Start());
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(out.closed);
    out.stats = r.stats();
  }
  CHECK(uv_loop_close(&loop) == 0);
  return out;
}

}  // namespace

TEST_CASE("Pacer: speed 0 never pauses") {
  Pacer p(0);
  CHECK(p.Delay(1000, 0) == 0);
  CHECK(p.Delay(500000, 0) == 0);
  Pacer nan(std::nan(""));
  CHECK(nan.Delay(1000, 0) == 0);
  CHECK(nan.Delay(9000, 0) == 0);
}

TEST_CASE("Pacer: speed 1 keeps the recorded gaps on a timeline") {
  Pacer p(1);
  CHECK(p.Delay(10000, 500) == 0);    // the first event: at once
  CHECK(p.Delay(10400, 500) == 400);  // due at 900
  CHECK(p.Delay(10500, 903) == 97);   // emitted 3 ms late: the lateness is not carried on
  CHECK(p.Delay(10500, 1000) == 0);   // same t
  CHECK(p.Delay(10300, 1000) == 0);   // the recorder's clock stepped back: no pause
  CHECK(p.Delay(10350, 1000) == 50);  // ... and gaps count from there
}

TEST_CASE("Pacer: speed scales the gaps") {
  Pacer fast(4);
  CHECK(fast.Delay(0, 0) == 0);
  CHECK(fast.Delay(1000, 0) == 250);
  CHECK(fast.Delay(1001, 250) == 1);  // 0.25 ms rounds up; never early
  Pacer slow(0.5);
  CHECK(slow.Delay(0, 0) == 0);
  CHECK(slow.Delay(100, 0) == 200);
}

TEST_CASE("Pacer: after a stall the timeline restarts instead of bursting") {
  Pacer p(1);
  CHECK(p.Delay(0, 0) == 0);
  CHECK(p.Delay(100, 0) == 100);
  // The consumer blocked for 5 s after the second event.
  CHECK(p.Delay(200, 5100) == 100);
  CHECK(p.Delay(300, 5200) == 100);
}

TEST_CASE("Pacer: a huge gap is capped by the arithmetic guard only") {
  Pacer p(1);
  CHECK(p.Delay(0, 0) == 0);
  CHECK(p.Delay(3600 * 1000, 0) == 3600 * 1000);  // an hour is an hour
  Pacer q(0.000001);
  CHECK(q.Delay(0, 0) == 0);
  CHECK(q.Delay(INT64_MAX, 0) == Pacer::kMaxPauseMs);
}

TEST_CASE("Selected: --from/--to are inclusive bounds on the id; filters apply") {
  ReplayConfig c;
  CHECK(Selected(c, Parsed(Ev(5))));
  CHECK(Selected(c, Parsed(R"({"job_id":"x"})")));  // no id, no bounds: passes
  c.from_id = 5;
  c.to_id = 7;
  CHECK_FALSE(Selected(c, Parsed(Ev(4))));
  CHECK(Selected(c, Parsed(Ev(5))));
  CHECK(Selected(c, Parsed(Ev(7))));
  CHECK_FALSE(Selected(c, Parsed(Ev(8))));
  CHECK_FALSE(Selected(c, Parsed(R"({"job_id":"x"})")));  // outside every range
  c.to_id.reset();
  CHECK(Selected(c, Parsed(Ev(1000))));
  c.filter.statuses = {"failed", "completed"};
  CHECK_FALSE(Selected(c, Parsed(Ev(6, "running"))));
  CHECK(Selected(c, Parsed(Ev(6, "failed"))));
  c.filter.user_id = "u2";
  CHECK_FALSE(Selected(c, Parsed(Ev(6, "failed", "u1"))));
  CHECK(Selected(c, Parsed(Ev(6, "failed", "u2"))));
  c.filter.job_types = {"mail"};
  CHECK_FALSE(Selected(c, Parsed(Ev(6, "failed", "u2", "sync"))));
  CHECK(Selected(c, Parsed(Ev(6, "failed", "u2", "mail"))));
  c.filter.job_id = "j9";
  CHECK_FALSE(Selected(c, Parsed(Ev(6, "failed", "u2", "mail", "j1"))));
  CHECK(Selected(c, Parsed(Ev(6, "failed", "u2", "mail", "j9"))));
}

TEST_CASE("Replayer: lines in order across small reads; CRLF, blank and unterminated lines") {
  TempDir dir;
  std::string file = dir / "j.ndjson";
  std::string body = FormatJournalLine(1, Ev(1)) +
                     "\n" +                                    // 2: blank, skipped silently
                     "{\"t\":2,\"event\":" + Ev(2) + "}\r\n" +  // 3: CRLF
                     "not json at all\n" +                      // 4: malformed
                     "   \t\n" +                                // 5: blank
                     "{\"t\":3,\"event\":[1]}\n" +              // 6: malformed
                     FormatJournalLine(4, Ev(4)) +             // 7
                     "{\"t\":5,\"event\":" + Ev(5) + "}";       // 8: no final newline
  WriteFile(file, body);
  for (size_t read_bytes : {size_t{1}, size_t{7}, size_t{64}, size_t{256} << 10}) {
    CAPTURE(read_bytes);
    ReplayConfig c;
    c.file = file;
    c.read_bytes = read_bytes;
    c.yield_every = 2;
    Outcome o = Replay(c);
    CHECK(o.events == std::vector<std::string>{Ev(1), Ev(2), Ev(4), Ev(5)});
    CHECK(o.times == std::vector<int64_t>{1, 2, 4, 5});
    REQUIRE(o.errors.size() == 2);
    CHECK(o.errors[0].rfind(file + ":4: malformed journal line: not valid JSON", 0) == 0);
    CHECK(o.errors[1] == file + ":6: malformed journal line: \"event\" is not a JSON object");
    CHECK(o.code == 1);
    CHECK(o.stats.lines == 6);
    CHECK(o.stats.malformed == 2);
    CHECK(o.stats.events == 4);
  }
}

TEST_CASE("Replayer: a clean journal ends with 0; an empty one too") {
  TempDir dir;
  WriteFile(dir / "a", FormatJournalLine(1, Ev(1)) + FormatJournalLine(2, Ev(2)));
  WriteFile(dir / "empty", "");
  ReplayConfig c;
  c.file = dir / "a";
  Outcome o = Replay(c);
  CHECK(o.code == 0);
  CHECK(o.errors.empty());
  CHECK(o.events.size() == 2);
  c.file = dir / "empty";
  o = Replay(c);
  CHECK(o.code == 0);
  CHECK(o.events.empty());
}

TEST_CASE("Replayer: selection by --from/--to and filters") {
  TempDir dir;
  std::string body;
  for (int i = 1; i <= 10; ++i) {
    body += FormatJournalLine(i, Ev(i, i % 2 ? "failed" : "running", i <= 5 ? "u1" : "u2"));
  }
  body += FormatJournalLine(11, R"({"job_id":"foreign","status":"failed"})");
  WriteFile(dir / "j", body);
  ReplayConfig c;
  c.file = dir / "j";
  c.from_id = 3;
  c.to_id = 8;
  c.filter.statuses = {"failed"};
  Outcome o = Replay(c);
  CHECK(o.times == std::vector<int64_t>{3, 5, 7});
  CHECK(o.stats.filtered == 8);
  CHECK(o.code == 0);

  ReplayConfig d;
  d.file = dir / "j";
  d.filter.user_id = "u2";
  d.filter.statuses = {"running"};
  o = Replay(d);
  CHECK(o.times == std::vector<int64_t>{6, 8, 10});

  ReplayConfig e;
  e.file = dir / "j";
  e.filter.statuses = {"failed"};
  o = Replay(e);
  CHECK(o.times == std::vector<int64_t>{1, 3, 5, 7, 9, 11});  // the foreign one has no id bound
}

TEST_CASE("Replayer: an over-long line is reported with its number and skipped") {
  TempDir dir;
  std::string big = "{\"t\":2,\"event\":{\"pad\":\"" + std::string(5000, 'x') + "\"}}\n";
  WriteFile(dir / "j", FormatJournalLine(1, Ev(1)) + big + FormatJournalLine(3, Ev(3)) + big +
                           FormatJournalLine(5, Ev(5)));
  for (size_t read_bytes : {size_t{100}, size_t{1} << 20}) {
    CAPTURE(read_bytes);
    ReplayConfig c;
    c.file = dir / "j";
    c.read_bytes = read_bytes;
    c.max_line_bytes = 1000;
    Outcome o = Replay(c);
    CHECK(o.times == std::vector<int64_t>{1, 3, 5});
    REQUIRE(o.errors.size() == 2);
    CHECK(o.errors[0] == c.file + ":2: malformed journal line: longer than 1000 bytes");
    CHECK(o.errors[1] == c.file + ":4: malformed journal line: longer than 1000 bytes");
    CHECK(o.code == 1);
    CHECK(o.stats.lines == 5);
    CHECK(o.stats.malformed == 2);
  }
}

TEST_CASE("Replayer: Start reports a missing file; nothing is left to close") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    ReplayConfig c;
    c.file = "/nonexistent/journal.ndjson";
    Replayer r(&loop, c, {[](const Event&, int64_t) {}, [](const std::string&) {}, [](int) {}});
    reactor::Status s = r.Start();
    REQUIRE_FALSE(s);
    CHECK(s.message() == "cannot open /nonexistent/journal.ndjson: no such file or directory");
  }
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("Replayer: a directory is a read error, exit 1") {
  TempDir dir;
  ReplayConfig c;
  c.file = dir.path();
  Outcome o = Replay(c);
  CHECK(o.code == 1);
  REQUIRE(o.errors.size() == 1);
  CHECK(o.errors[0].rfind(dir.path() + ": read failed: ", 0) == 0);
}

TEST_CASE("Replayer: Close from inside on_event stops the replay; the loop closes cleanly") {
  TempDir dir;
  std::string body;
  for (int i = 1; i <= 50; ++i) body += FormatJournalLine(i, Ev(i));
  WriteFile(dir / "j", body);
  ReplayConfig c;
  c.file = dir / "j";
  c.read_bytes = 100;  // a read may be in flight when it stops
  Outcome o = Replay(c, 3);
  CHECK(o.events.size() == 3);
  CHECK(o.code == -1);  // no on_done after Close
}

TEST_CASE("Replayer: a paced replay takes at least the recorded time") {
  TempDir dir;
  WriteFile(dir / "j", FormatJournalLine(1000, Ev(1)) + FormatJournalLine(1060, Ev(2)) +
                           FormatJournalLine(1120, Ev(3)));
  ReplayConfig c;
  c.file = dir / "j";
  c.speed = 2;
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    std::vector<uint64_t> at;
    Replayer* self = nullptr;
    Replayer r(&loop, c,
               {[&](const Event&, int64_t) {
                  uv_update_time(&loop);
                  at.push_back(uv_now(&loop));
                },
                [](const std::string&) {}, [&](int) { self->Close([] {}); }});
    self = &r;
    REQUIRE(r.Start());
    uv_run(&loop, UV_RUN_DEFAULT);
    REQUIRE(at.size() == 3);
    CHECK(at[1] - at[0] >= 30);  // 60 ms recorded, at speed 2
    CHECK(at[2] - at[0] >= 60);
  }
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("Round trip: record with the Journal, replay at speed 0, identical event lines") {
  TempDir dir;
  std::string path = dir / "rec.ndjson";
  std::vector<std::string> events = {
      Ev(1),
      R"({"id": 2, "kind": "progress", "job_id": "é✓😀", "source": "jobs", "message": "a\nb \"q\" \\ \u00e9 \ud83d\ude00"})",
      R"({"job_id":"abc","status":"processing","nested":{"a":[1,2,{"b":null}],"c":1.5e3}})",
      Ev(4, "failed", "u2", "mail"),
  };
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    Journal j(&loop, path);
    REQUIRE(j.Open());
    for (size_t i = 0; i < events.size(); ++i) j.Append(1700000000000 + int64_t(i), events[i]);
    bool closed = false;
    j.Close([&] { closed = true; });
    uv_run(&loop, UV_RUN_DEFAULT);
    REQUIRE(closed);
  }
  CHECK(uv_loop_close(&loop) == 0);

  ReplayConfig c;
  c.file = path;
  Outcome o = Replay(c);
  CHECK(o.code == 0);
  CHECK(o.errors.empty());
  CHECK(o.events == events);
  CHECK(o.times == std::vector<int64_t>{1700000000000, 1700000000001, 1700000000002,
                                        1700000000003});
}
