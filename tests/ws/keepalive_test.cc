#include <doctest/doctest.h>

#include "ws/keepalive.h"

using reactor::ws::Keepalive;
using Action = Keepalive::Action;

TEST_CASE("keepalive: ping every 25 s, close after two unanswered pings") {
  Keepalive k(1000);
  CHECK(k.next_deadline() == 26000);
  CHECK(k.Tick(25999) == Action::kNone);
  CHECK(k.Tick(26000) == Action::kPing);
  CHECK(k.unanswered() == 1);
  CHECK(k.next_deadline() == 51000);
  CHECK(k.Tick(51000) == Action::kPing);
  CHECK(k.unanswered() == 2);
  CHECK(k.Tick(75999) == Action::kNone);
  CHECK(k.Tick(76000) == Action::kClose);
}

TEST_CASE("keepalive: a pong resets the count") {
  Keepalive k(0);
  CHECK(k.Tick(25000) == Action::kPing);
  CHECK(k.Tick(50000) == Action::kPing);
  k.OnPong();
  CHECK(k.unanswered() == 0);
  CHECK(k.Tick(75000) == Action::kPing);
  CHECK(k.Tick(100000) == Action::kPing);
  CHECK(k.Tick(125000) == Action::kClose);
}

TEST_CASE("keepalive: a late timer does not shorten the time to answer") {
  Keepalive k(0, {1000, 2});
  CHECK(k.Tick(5000) == Action::kPing);   // fired 4 s late
  CHECK(k.next_deadline() == 6000);       // the peer still gets a full interval
  CHECK(k.Tick(5500) == Action::kNone);   // early wake-up
  CHECK(k.Tick(6000) == Action::kPing);
  CHECK(k.Tick(7000) == Action::kClose);
}
