#include <doctest/doctest.h>
#include <uv.h>

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "journal/journal.h"
#include "journal/journal_line.h"
#include "test_util.h"

using journal_test::ReadFile;
using journal_test::RunFor;
using journal_test::RunUntil;
using journal_test::TempDir;
using reactor::journal::FormatJournalLine;
using reactor::journal::Journal;
using reactor::journal::JournalLimits;
using reactor::journal::JournalStats;

namespace {

std::string Event(int i) {
  return R"({"id":)" + std::to_string(i) + R"(,"kind":"status","job_id":"j)" + std::to_string(i) +
         R"(","source":"scheduled_jobs","status":"running","msg":"é \"x\"\n"})";
}

// Closes the journal and runs the loop until the close callback ran.
void CloseAndDrain(uv_loop_t* loop, Journal& j) {
  bool closed = false;
  j.Close([&closed] { closed = true; });
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(closed);
}

JournalLimits FastLimits() {
  JournalLimits l;
  l.retry_ms = 10;
  l.close_timeout_ms = 200;
  return l;
}

}  // namespace

TEST_CASE("Journal: lines appended then Close -> the file holds exactly those lines") {
  TempDir dir;
  std::string path = dir / "events.ndjson";
  journal_test::WriteFile(path, "{\"t\":1,\"event\":{}}\n");  // appended to, never truncated
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    Journal j(&loop, path);
    REQUIRE(j.Open());
    std::string expected = "{\"t\":1,\"event\":{}}\n";
    for (int i = 0; i < 100; ++i) {
      j.Append(1700000000000 + i, Event(i));
      expected += FormatJournalLine(1700000000000 + i, Event(i));
      if (i % 10 == 9) RunFor(&loop, 1);  // several loop passes, several writes
    }
    CloseAndDrain(&loop, j);
    JournalStats s = j.stats();
    CHECK(s.lines_written == 100);
    CHECK(s.bytes_written == expected.size() - 19);
    CHECK(s.write_errors == 0);
    CHECK(s.lines_dropped == 0);
    CHECK(s.bytes_buffered == 0);
    CHECK(ReadFile(path) == expected);
    mode_t mask = umask(0);
    umask(mask);
    std::filesystem::remove(path);  // created by WriteFile: let the Journal create it
    Journal k(&loop, path);
    REQUIRE(k.Open());
    CloseAndDrain(&loop, k);
    CHECK(static_cast<mode_t>(std::filesystem::status(path).permissions() &
                              std::filesystem::perms::all) == (0644 & ~mask));
  }
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("Journal: the loop writes before it sleeps, without an explicit Flush") {
  TempDir dir;
  std::string path = dir / "j";
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    Journal j(&loop, path);
    REQUIRE(j.Open());
    // As when events arrive in a socket callback: appended inside a loop pass.
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &j;
    uv_timer_start(&t, [](uv_timer_t* h) {
      static_cast<Journal*>(h->data)->Append(7, R"({"id":1})");
    }, 0, 0);
    CHECK(RunUntil(&loop, [&] { return j.stats().lines_written == 1; }));
    uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
    CHECK(ReadFile(path) == "{\"t\":7,\"event\":{\"id\":1}}\n");
    CloseAndDrain(&loop, j);
  }
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("Journal: a full disk (/dev/full) is counted, keeps the bytes, never crashes") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    Journal j(&loop, "/dev/full", FastLimits());
    REQUIRE(j.Open());
    j.Append(1, Event(1));
    j.Append(2, Event(2));
    j.Append(3, Event(3));
    size_t bytes = FormatJournalLine(1, Event(1)).size() + FormatJournalLine(2, Event(2)).size() +
                   FormatJournalLine(3, Event(3)).size();
    RunFor(&loop, 60);
    JournalStats s = j.stats();
    CHECK(s.write_errors >= 2);  // failed, backed off, failed again
    CHECK(s.lines_written == 0);
    CHECK(s.lines_dropped == 0);  // still buffered: a disk that frees up loses nothing
    CHECK(s.bytes_buffered == bytes);

    CloseAndDrain(&loop, j);  // gives up after close_timeout_ms
    s = j.stats();
    CHECK(s.lines_dropped == 3);
    CHECK(s.bytes_dropped == bytes);
    CHECK(s.bytes_buffered == 0);
    j.Append(4, Event(4));  // after Close: dropped, counted, harmless
    CHECK(j.stats().lines_dropped == 4);
  }
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("Journal: the buffer bound drops whole lines and counts them") {
  TempDir dir;
  std::string path = dir / "j";
  size_t line = FormatJournalLine(1000, Event(1)).size();
  JournalLimits limits;
  limits.max_buffer_bytes = 3 * line;
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    Journal j(&loop, path, limits);
    REQUIRE(j.Open());
    for (int i = 1; i <= 5; ++i) j.Append(1000, Event(i));  // no loop pass in between
    JournalStats s = j.stats();
    CHECK(s.lines_dropped == 2);
    CHECK(s.bytes_dropped == 2 * line);
    CHECK(s.bytes_buffered == 3 * line);
    CloseAndDrain(&loop, j);
    CHECK(ReadFile(path) == FormatJournalLine(1000, Event(1)) + FormatJournalLine(1000, Event(2)) +
                                FormatJournalLine(1000, Event(3)));
    CHECK(j.stats().lines_written == 3);
  }
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("Journal: Reopen after a rename sends the following lines to a new file") {
  TempDir dir;
  std::string path = dir / "j";
  std::string rotated = dir / "j.1";
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    Journal j(&loop, path);
    REQUIRE(j.Open());
    j.Append(1, Event(1));
    j.Append(2, Event(2));
    j.Flush();
    uv_run(&loop, UV_RUN_DEFAULT);  // until the write completed
    REQUIRE(j.stats().lines_written == 2);

    REQUIRE(std::rename(path.c_str(), rotated.c_str()) == 0);
    j.Append(3, Event(3));  // not yet written: goes to the new file
    j.Reopen();
    j.Append(4, Event(4));
    CHECK(RunUntil(&loop, [&] { return j.stats().lines_written == 4; }));
    CHECK(j.stats().reopens == 1);
    CHECK(ReadFile(rotated) == FormatJournalLine(1, Event(1)) + FormatJournalLine(2, Event(2)));
    CHECK(ReadFile(path) == FormatJournalLine(3, Event(3)) + FormatJournalLine(4, Event(4)));

    j.Reopen();  // twice, with nothing buffered: same file, appended to
    j.Append(5, Event(5));
    CloseAndDrain(&loop, j);
    CHECK(j.stats().reopens == 2);
    CHECK(ReadFile(path) == FormatJournalLine(3, Event(3)) + FormatJournalLine(4, Event(4)) +
                                FormatJournalLine(5, Event(5)));
  }
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("Journal: a reopen that fails is retried and loses nothing once the path works") {
  TempDir dir;
  std::string sub = dir / "logs";
  std::filesystem::create_directory(sub);
  std::string path = sub + "/j";
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    Journal j(&loop, path, FastLimits());
    REQUIRE(j.Open());
    j.Append(1, Event(1));
    j.Flush();
    uv_run(&loop, UV_RUN_DEFAULT);
    REQUIRE(j.stats().lines_written == 1);

    std::filesystem::remove_all(sub);  // the directory is gone: open(2) fails
    j.Reopen();
    j.Append(2, Event(2));
    j.Append(3, Event(3));
    RunFor(&loop, 50);
    JournalStats s = j.stats();
    CHECK(s.write_errors >= 2);
    CHECK(s.reopens == 0);
    CHECK(s.lines_dropped == 0);

    std::filesystem::create_directory(sub);
    CHECK(RunUntil(&loop, [&] { return j.stats().lines_written == 3; }));
    CHECK(j.stats().reopens == 1);
    CHECK(ReadFile(path) == FormatJournalLine(2, Event(2)) + FormatJournalLine(3, Event(3)));
    CloseAndDrain(&loop, j);
    CHECK(j.stats().lines_dropped == 0);
  }
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("Journal: Open reports a path it cannot open; nothing is left to close") {
  TempDir dir;
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    Journal j(&loop, dir / "missing/j");
    reactor::Status s = j.Open();
    REQUIRE_FALSE(s);
    CHECK(s.message().find("missing/j") != std::string::npos);
    CHECK(s.message().find("no such file or directory") != std::string::npos);
  }
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("Journal: Close with nothing to write closes at once") {
  TempDir dir;
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    JournalLimits limits;
    limits.close_timeout_ms = 3600 * 1000;
    Journal j(&loop, dir / "j", limits);
    REQUIRE(j.Open());
    uint64_t before = uv_now(&loop);
    CloseAndDrain(&loop, j);
    CHECK(uv_now(&loop) - before < limits.close_timeout_ms / 2);  // not the give-up timer
    CHECK(ReadFile(dir / "j").empty());
  }
  CHECK(uv_loop_close(&loop) == 0);
}

namespace {

// Caps the size of every file this process writes (RLIMIT_FSIZE), so that write(2) comes
// back short and then fails with EFBIG: a disk filling up mid-line, on demand. Logging is
// off meanwhile (the test log is a file too); assertions wait for the destructor.
class FileSizeCap {
 public:
  explicit FileSizeCap(rlim_t bytes) {
    REQUIRE(getrlimit(RLIMIT_FSIZE, &saved_) == 0);
    saved_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    saved_level_ = spdlog::get_level();
    spdlog::set_level(spdlog::level::off);
    Set(bytes);
  }
  void Set(rlim_t bytes) {
    rlimit r = saved_;
    r.rlim_cur = bytes;
    ok_ = ok_ && setrlimit(RLIMIT_FSIZE, &r) == 0;
  }
  ~FileSizeCap() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, saved_handler_);
    spdlog::set_level(saved_level_);
  }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  void (*saved_handler_)(int) = nullptr;
  spdlog::level::level_enum saved_level_{};
  bool ok_ = true;
};

}  // namespace

TEST_CASE("Journal: a short write is completed once the disk has room, nothing lost") {
  TempDir dir;
  std::string path = dir / "j";
  std::string l1 = FormatJournalLine(1, Event(1)), l2 = FormatJournalLine(2, Event(2)),
              l3 = FormatJournalLine(3, Event(3));
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  JournalStats during{}, after{};
  bool cap_ok = false, failed = false, recovered = false;
  {
    Journal j(&loop, path, FastLimits());
    REQUIRE(j.Open());
    {
      FileSizeCap cap(l1.size() + l2.size() / 2);  // the second line is cut
      j.Append(1, Event(1));
      j.Append(2, Event(2));
      j.Flush();
      failed = RunUntil(&loop, [&] { return j.stats().write_errors >= 2; });
      during = j.stats();
      cap.Set(RLIM_INFINITY);  // room again
      j.Append(3, Event(3));
      recovered = RunUntil(&loop, [&] { return j.stats().bytes_buffered == 0; });
      cap_ok = cap.ok();
    }
    CloseAndDrain(&loop, j);
    after = j.stats();
  }
  CHECK(uv_loop_close(&loop) == 0);
  REQUIRE(cap_ok);
  CHECK(failed);
  CHECK(during.bytes_written == l1.size() + l2.size() / 2);
  CHECK(during.lines_written == 1);
  CHECK(during.bytes_buffered == l2.size() - l2.size() / 2);
  CHECK(recovered);
  CHECK(after.lines_written == 3);
  CHECK(after.lines_dropped == 0);
  CHECK(ReadFile(path) == l1 + l2 + l3);
}

TEST_CASE("Journal: Reopen after a short write leaves no fragment at the head of the new file") {
  TempDir dir;
  std::string path = dir / "j";
  std::string rotated = dir / "j.1";
  std::string l1 = FormatJournalLine(1, Event(1)), l2 = FormatJournalLine(2, Event(2)),
              l3 = FormatJournalLine(3, Event(3));
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  JournalStats during{}, after{};
  bool cap_ok = false, failed = false, switched = false;
  {
    Journal j(&loop, path, FastLimits());
    REQUIRE(j.Open());
    {
      // The old file stays full for good; the new one starts empty, under the cap.
      FileSizeCap cap(l1.size() + l2.size() / 2);
      j.Append(1, Event(1));
      j.Append(2, Event(2));
      j.Flush();
      failed = RunUntil(&loop, [&] { return j.stats().write_errors >= 1; });
      during = j.stats();
      switched = std::rename(path.c_str(), rotated.c_str()) == 0;
      j.Append(3, Event(3));
      j.Reopen();
      switched = switched && RunUntil(&loop, [&] { return j.stats().lines_written == 2; });
      cap_ok = cap.ok();
    }
    CloseAndDrain(&loop, j);
    after = j.stats();
  }
  CHECK(uv_loop_close(&loop) == 0);
  REQUIRE(cap_ok);
  CHECK(failed);
  CHECK(switched);
  CHECK(during.lines_written == 1);
  CHECK(after.reopens == 1);
  CHECK(after.lines_dropped == 1);  // the cut line: its start is in the old file
  CHECK(after.bytes_dropped == l2.size() - l2.size() / 2);
  CHECK(ReadFile(rotated) == l1 + l2.substr(0, l2.size() / 2));
  CHECK(ReadFile(path) == l3);
}
