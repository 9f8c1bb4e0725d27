// A connection's send queue: references to encoded frames (shared with every other
// recipient), bounded in bytes. Pure; the libuv glue writes from it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace reactor::hub {

using FrameRef = std::shared_ptr<const std::string>;  // one complete WebSocket frame

// What the metrics need of an event frame: when its event entered the reactor (a steady
// clock) and its `at` (Unix microseconds, the database's clock; 0 unknown).
struct FrameStamp {
  uint64_t received_ns = 0;
  int64_t at_us = 0;
};

class OutQueue {
 public:
  struct Chunk {
    FrameRef frame;
    size_t offset;
    size_t size;
    std::string_view view() const { return std::string_view(*frame).substr(offset, size); }
  };

  using Stamp = FrameStamp;

  bool empty() const { return count_ == 0; }
  size_t bytes() const { return bytes_; }
  size_t frames() const { return count_; }

  // `stamp`: an event frame's (zero for other frames); handed back by Consume when the
  // frame has been written completely.
  void Push(FrameRef f, Stamp stamp = {}) {
    bytes_ += f->size();
    if (count_ == ring_.size()) Grow();
    ring_[Index(count_)] = Entry{std::move(f), stamp};
    ++count_;
  }
  // Up to `max` chunks from the front, holding references (so they outlive a Consume).
  std::vector<Chunk> Gather(size_t max) const {
    std::vector<Chunk> out;
    size_t off = offset_;
    for (size_t i = 0; i < count_ && out.size() < max; ++i) {
      const FrameRef& f = ring_[Index(i)].frame;
      out.push_back(Chunk{f, off, f->size() - off});
      off = 0;
    }
    return out;
  }
  // `n` bytes from the front have been written (or handed to an asynchronous write).
  // `done(stamp)` is called for each frame completed that carried a stamp.
  template <class Done>
  void Consume(size_t n, Done&& done) {
    bytes_ -= n;
    while (n > 0) {
      Entry& e = ring_[head_];
      size_t left = e.frame->size() - offset_;
      if (n < left) {
        offset_ += n;
        return;
      }
      n -= left;
      offset_ = 0;
      if (e.stamp.received_ns != 0) done(e.stamp);
      e.frame.reset();
      head_ = Index(1);
      --count_;
    }
    if (count_ == 0) Rewind();
  }
  void Consume(size_t n) {
    Consume(n, [](const Stamp&) {});
  }
  // Drops everything not yet handed to a write (a connection being closed).
  void Clear() {
    std::vector<Entry>().swap(ring_);
    head_ = count_ = offset_ = bytes_ = 0;
  }

 private:
  // A ring that allocates nothing until the first frame (an idle connection holds a
  // handful of slots, not a deque's 512-byte blocks) and gives a burst's room back.
  struct Entry {
    FrameRef frame;
    Stamp stamp;
  };
  static constexpr size_t kKeepSlots = 16;  // kept across an empty queue; more is freed
  size_t Index(size_t i) const { return (head_ + i) % ring_.size(); }
  void Grow() {
    std::vector<Entry> bigger(ring_.empty() ? 4 : ring_.size() * 2);
    for (size_t i = 0; i < count_; ++i) bigger[i] = std::move(ring_[Index(i)]);
    ring_.swap(bigger);
    head_ = 0;
  }
  void Rewind() {
    head_ = 0;
    if (ring_.size() > kKeepSlots) std::vector<Entry>().swap(ring_);
  }

  std::vector<Entry> ring_;
  size_t head_ = 0;    // slot of the front frame
  size_t count_ = 0;   // frames queued
  size_t offset_ = 0;  // bytes of the front frame already written
  size_t bytes_ = 0;
};

}  // namespace reactor::hub
