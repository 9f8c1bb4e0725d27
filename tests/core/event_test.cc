#include <doctest/doctest.h>

#include "core/event.h"
#include "core/filter.h"

using reactor::Event;

TEST_CASE("ParseEvent extracts the routing fields and keeps the bytes") {
  reactor::EventParser p;
  std::string j =
      R"({"id": 4711, "kind": "status", "job_id": "job_42", "source": "scheduled_jobs",)"
      R"( "status": "running", "old_status": "pending", "user_id": "u1", "job_type": "auto_sync",)"
      R"( "attempt": 1, "progress": null, "at": "2026-11-21T06:00:00.012345Z"})";
  auto r = p.Parse(j);
  REQUIRE(r);
  CHECK(r->id == 4711);
  CHECK(r->kind == "status");
  CHECK(r->job_id == "job_42");
  CHECK(r->status == "running");
  CHECK(r->user_id == "u1");
  CHECK(r->has_user);
  CHECK(r->job_type == "auto_sync");
  CHECK_FALSE(r->truncated);
  CHECK_FALSE(r->foreign);
  CHECK(r->is_logged());
  CHECK(r->json == j);
}

TEST_CASE("ParseEvent: truncated form, null user, numeric job id") {
  reactor::EventParser p;
  auto r = p.Parse(R"({"id":9,"kind":"progress","job_id":17,"source":"jobs","status":"running","user_id":null,"truncated":true})");
  REQUIRE(r);
  CHECK(r->truncated);
  CHECK(r->job_id == "17");
  CHECK_FALSE(r->has_user);
  CHECK(r->user_id.empty());
}

TEST_CASE("ParseEvent: the oversize notice of CONTRACT section 4 is a logged event") {
  reactor::EventParser p;
  auto r = p.Parse(R"({"id": 4711, "kind": "status", "job_id": "job_42", "status": "completed", "truncated": true})");
  REQUIRE(r);
  CHECK(r->truncated);
  CHECK_FALSE(r->foreign);
  CHECK(r->is_logged());
  // Without an id it cannot be fetched: a foreign object that happens to say "truncated".
  auto f = p.Parse(R"({"kind": "status", "job_id": "x", "truncated": true})");
  REQUIRE(f);
  CHECK(f->foreign);
}

TEST_CASE("ParseEvent: a foreign object passes, with its fields intact") {
  reactor::EventParser p;
  std::string j = R"({"job_id":"abc","status":"processing","progress_percent":40,"nested":{"a":[1,2]}})";
  auto r = p.Parse(j);
  REQUIRE(r);
  CHECK(r->foreign);
  CHECK_FALSE(r->is_logged());
  CHECK(r->status == "processing");
  CHECK(r->json == j);
}

TEST_CASE("ParseEvent rejects what is not one JSON object") {
  reactor::EventParser p;
  CHECK_FALSE(p.Parse("hello"));
  CHECK_FALSE(p.Parse("[1,2]"));
  CHECK_FALSE(p.Parse("42"));
  CHECK_FALSE(p.Parse(""));
  CHECK_FALSE(p.Parse(R"({"id":1)"));
  CHECK_FALSE(p.Parse(R"({"id":1} {"id":2})"));
  CHECK_FALSE(p.Parse("{\"job_id\":\"\xff\"}"));
}

TEST_CASE("Filter matches every given key") {
  reactor::EventParser p;
  auto ev = p.Parse(R"({"id":1,"kind":"status","source":"s","job_id":"j1","status":"failed","user_id":"u1","job_type":"sync"})");
  REQUIRE(ev);
  reactor::Filter f;
  CHECK(f.Matches(*ev));
  f.statuses = {"running", "failed"};
  CHECK(f.Matches(*ev));
  f.job_types = {"other"};
  CHECK_FALSE(f.Matches(*ev));
  f.job_types = {"sync"};
  f.user_id = "u2";
  CHECK_FALSE(f.Matches(*ev));
  f.user_id = "u1";
  f.job_id = "j1";
  CHECK(f.Matches(*ev));
  auto anon = p.Parse(R"({"id":2,"kind":"status","source":"s","job_id":"j1","user_id":null})");
  reactor::Filter fu;
  fu.user_id = "u1";
  CHECK_FALSE(fu.Matches(*anon));
}

TEST_CASE("ParseEvent reads old_status and at (the times core/iso_time.h reads)") {
  reactor::EventParser parser;
  auto ev = parser.Parse(R"({"id":3,"kind":"status","source":"scheduled_jobs","job_id":"j","status":"running","old_status":"pending","at":"2026-11-21T06:00:00.012345Z"})");
  REQUIRE(ev);
  CHECK(ev->old_status == "pending");
  CHECK(ev->at_us == 1795240800012345);
  auto insert = parser.Parse(R"({"id":4,"kind":"status","source":"s","job_id":"j","old_status":null,"at":"x"})");
  REQUIRE(insert);
  CHECK(insert->old_status.empty());
  CHECK(insert->at_us == 0);
}
