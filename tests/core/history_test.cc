#include <doctest/doctest.h>

#include "core/history.h"

using namespace reactor;

namespace {
PublishedRef P(int64_t id) {
  auto p = std::make_shared<Published>();
  p->event.id = id;
  p->frame = "f" + std::to_string(id);
  return p;
}
std::vector<int64_t> Ids(const std::vector<PublishedRef>& v) {
  std::vector<int64_t> out;
  for (auto& p : v) out.push_back(p->event.id);
  return out;
}
}  // namespace

TEST_CASE("resume returns what came after the id, in stream order, not id order") {
  HistoryRing h(10);
  for (int64_t id : {5, 3, 9, 4}) h.Push(P(id));  // ids commit out of order
  auto after = h.After(3);
  REQUIRE(after);
  CHECK(Ids(*after) == std::vector<int64_t>{9, 4});
  CHECK(Ids(*h.After(4)).empty());
  CHECK(Ids(*h.After(0)) == std::vector<int64_t>{5, 3, 9, 4});
  CHECK_FALSE(h.After(7));
  CHECK(h.last_id() == 4);
}

TEST_CASE("evicted ids cannot be resumed from; the ring stays bounded") {
  HistoryRing h(3);
  for (int64_t id = 1; id <= 5; ++id) h.Push(P(id));
  CHECK(h.size() == 3);
  CHECK_FALSE(h.After(1));
  CHECK_FALSE(h.After(2));
  CHECK_FALSE(h.After(0));  // the beginning is gone
  REQUIRE(h.After(3));
  CHECK(Ids(*h.After(3)) == std::vector<int64_t>{4, 5});
}

TEST_CASE("foreign events (id 0) are kept in order but cannot be resumed from") {
  HistoryRing h(5);
  h.Push(P(1));
  h.Push(P(0));
  h.Push(P(2));
  CHECK(Ids(*h.After(1)) == std::vector<int64_t>{0, 2});
  CHECK(h.last_id() == 2);
}

TEST_CASE("positions: a resume is found in O(1) and walked entry by entry, no copy") {
  HistoryRing h(3);
  for (int64_t id : {7, 8, 9, 10}) h.Push(P(id));  // 7 evicted
  CHECK(h.begin() == 1);
  CHECK(h.end() == 4);
  CHECK_FALSE(h.PositionAfter(7));
  REQUIRE(h.PositionAfter(8));
  CHECK(*h.PositionAfter(8) == 2);
  CHECK(*h.PositionAfter(10) == 4);  // nothing after the last
  CHECK(h.At(0) == nullptr);
  CHECK(h.At(4) == nullptr);
  REQUIRE(h.At(2));
  CHECK((*h.At(2))->event.id == 9);
  // Capacity 0 keeps nothing but still counts positions.
  HistoryRing none(0);
  CHECK(*none.PositionAfter(0) == 0);
  none.Push(P(1));
  CHECK(none.end() == 1);
  CHECK(none.At(0) == nullptr);
  CHECK_FALSE(none.PositionAfter(0));
  CHECK_FALSE(none.PositionAfter(1));
}

TEST_CASE("HistoryRing: the first position with txid >= a horizon, across evictions and the wrap") {
  HistoryRing ring(5);
  auto push = [&ring](int64_t id, uint64_t txid) {
    auto p = std::make_shared<Published>();
    p->event.id = id;
    p->event.kind = "status";
    p->event.txid = txid;
    ring.Push(p);
  };
  CHECK(!ring.FirstTxidAtLeast(1, ring.end()));
  push(1, 10);
  push(2, 30);
  push(3, 20);
  CHECK(ring.FirstTxidAtLeast(15, ring.end()) == uint64_t{1});
  CHECK(ring.FirstTxidAtLeast(25, ring.end()) == uint64_t{1});
  CHECK(ring.FirstTxidAtLeast(5, ring.end()) == uint64_t{0});
  CHECK(!ring.FirstTxidAtLeast(31, ring.end()));
  CHECK(!ring.FirstTxidAtLeast(25, 1));  // only [begin, 1)
  for (int64_t id = 4; id <= 9; ++id) push(id, static_cast<uint64_t>(id));  // evicts 1..4
  CHECK(ring.begin() == 4);
  // Positions 4..8 hold txids 5..9, wrapped around slots 4,0,1,2,3.
  CHECK(ring.FirstTxidAtLeast(7, ring.end()) == uint64_t{6});
  CHECK(ring.FirstTxidAtLeast(5, ring.end()) == uint64_t{4});
  CHECK(ring.FirstTxidAtLeast(9, ring.end()) == uint64_t{8});
  CHECK(!ring.FirstTxidAtLeast(9, 8));
  CHECK(!ring.FirstTxidAtLeast(30, ring.end()));  // 30 was evicted
  // Brute force over a random stream.
  HistoryRing big(37);
  std::vector<uint64_t> txids;
  uint64_t x = 12345;
  for (int i = 0; i < 500; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    const uint64_t t = 1 + (x >> 33) % 1000;
    txids.push_back(t);
    auto p = std::make_shared<Published>();
    p->event.id = i + 1;
    p->event.txid = t;
    big.Push(p);
    for (uint64_t h : {1ull, 250ull, 500ull, 900ull, 999ull}) {
      for (uint64_t before : {big.begin() + 3, big.end()}) {
        std::optional<uint64_t> want;
        for (uint64_t pos = big.begin(); pos < std::min(before, big.end()); ++pos) {
          if (txids[pos] >= h) { want = pos; break; }
        }
        CHECK(big.FirstTxidAtLeast(h, before) == want);
      }
    }
  }
}
