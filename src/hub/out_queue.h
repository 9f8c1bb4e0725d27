// A connection's send queue: references to encoded frames (shared with every other
// recipient), bounded in bytes. Pure; the libuv glue writes from it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace reactor::hub {

using FrameRef = std::shared_ptr<const std::string>;  // one complete WebSocket frame

class OutQueue {
 public:
  struct Chunk {
    FrameRef frame;
    size_t offset;
    size_t size;
    std::string_view view() const { return std::string_view(*frame).substr(offset, size); }
  };

  bool empty() const { return frames_.empty(); }
  size_t bytes() const { return bytes_; }
  size_t frames() const { return frames_.size(); }

  // `stamp_ns`: when the frame's event entered the reactor (0 for other frames); handed
  // back by Consume when the frame has been written completely.
  void Push(FrameRef f, uint64_t stamp_ns = 0) {
    bytes_ += f->size();
    frames_.push_back(std::move(f));
    stamps_.push_back(stamp_ns);
  }
  // Up to `max` chunks from the front, holding references (so they outlive a Consume).
  std::vector<Chunk> Gather(size_t max) const {
    std::vector<Chunk> out;
    size_t off = offset_;
    for (size_t i = 0; i < frames_.size() && out.size() < max; ++i) {
      out.push_back(Chunk{frames_[i], off, frames_[i]->size() - off});
      off = 0;
    }
    return out;
  }
  // `n` bytes from the front have been written (or handed to an asynchronous write).
  // `done(stamp_ns)` is called for each frame completed that carried a stamp.
  template <class Done>
  void Consume(size_t n, Done&& done) {
    bytes_ -= n;
    while (n > 0) {
      size_t left = frames_.front()->size() - offset_;
      if (n < left) {
        offset_ += n;
        return;
      }
      n -= left;
      offset_ = 0;
      if (stamps_.front() != 0) done(stamps_.front());
      frames_.pop_front();
      stamps_.pop_front();
    }
  }
  void Consume(size_t n) {
    Consume(n, [](uint64_t) {});
  }
  // Drops everything not yet handed to a write (a connection being closed).
  void Clear() {
    frames_.clear();
    stamps_.clear();
    offset_ = 0;
    bytes_ = 0;
  }

 private:
  std::deque<FrameRef> frames_;
  std::deque<uint64_t> stamps_;
  size_t offset_ = 0;  // bytes of frames_.front() already written
  size_t bytes_ = 0;
};

}  // namespace reactor::hub
