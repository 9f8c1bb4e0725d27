// A connection's send queue: references to encoded frames (shared with every other
// recipient), bounded in bytes. Pure; the libuv glue writes from it.
#pragma once

#include <cstddef>
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

  void Push(FrameRef f) {
    bytes_ += f->size();
    frames_.push_back(std::move(f));
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
  void Consume(size_t n) {
    bytes_ -= n;
    while (n > 0) {
      size_t left = frames_.front()->size() - offset_;
      if (n < left) {
        offset_ += n;
        return;
      }
      n -= left;
      offset_ = 0;
      frames_.pop_front();
    }
  }

 private:
  std::deque<FrameRef> frames_;
  size_t offset_ = 0;  // bytes of frames_.front() already written
  size_t bytes_ = 0;
};

}  // namespace reactor::hub
