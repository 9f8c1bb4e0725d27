// WebSocket load client for tools/bench: opens N connections to the reactor, subscribes
// each to everything, and counts event frames; on every `sample`-th connection it
// measures commit-to-client latency from the payload's "t_us" (unix microseconds when
// the producer's statement ran). One epoll loop, no allocation per frame.
//
// usage: ws_client_bench HOST PORT CONNECTIONS SAMPLE_EVERY EXPECTED_EVENTS TIMEOUT_S [HOLD_S]
// Prints {"ready":N} when every connection is subscribed, then at the end
// {"connections":N,"events_min":..,"events_total":..,"p50_us":..,"p99_us":..,"p999_us":..,"max_us":..}
// With HOLD_S > 0 it only holds the subscribed connections open that long (idle RSS).
// Environment:
//   WS_SOURCES=127.0.0.2,127.0.0.3   bind connection i to source address i % k (one
//                                    address has about 28 000 ephemeral ports)
//   WS_SUBSCRIBE='{"op":"subscribe","id":"b","filter":{"user_id":"idle%d"}}'
//                                    the subscribe message (%d = the connection's index)
//   WS_READ_FPS=10 WS_SLOW_S=20      read about that many frames per second per
//                                    connection for WS_SLOW_S seconds, then at full speed
//   WS_CHECK_LAST=ID WS_CHECK_JOBS=J events are {"id":g,"job_id":"b<g%J>"}: also report
//                                    how many jobs' final events (ids up to ID) arrived
//                                    ("finals"), in per-job order ("order_errors"), and
//                                    end once all of them have
// The ready line carries "ready_s": seconds from the first connect to the last subscribed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
long long NowUs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}
double Mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Conn {
  int fd = -1;
  bool upgraded = false;
  bool subscribed = false;
  bool sample = false;
  std::string buf;
  long long events = 0;
};

std::string MaskedText(const std::string& payload) {
  std::string f;
  f.push_back(static_cast<char>(0x81));
  f.push_back(static_cast<char>(0x80 | payload.size()));  // < 126 bytes
  const unsigned char mask[4] = {1, 2, 3, 4};
  for (unsigned char m : mask) f.push_back(static_cast<char>(m));
  for (size_t i = 0; i < payload.size(); ++i) f.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
  return f;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: ws_client_bench HOST PORT CONNECTIONS SAMPLE_EVERY EXPECTED TIMEOUT_S [HOLD_S]\n");
    return 2;
  }
  const char* host = argv[1];
  int port = std::atoi(argv[2]);
  int n = std::atoi(argv[3]);
  int sample_every = std::max(1, std::atoi(argv[4]));
  long long expected = std::atoll(argv[5]);
  double timeout = std::atof(argv[6]);
  double hold = argc > 7 ? std::atof(argv[7]) : 0;

  std::vector<sockaddr_in> sources;
  if (const char* env = std::getenv("WS_SOURCES")) {
    std::string list = env;
    for (size_t at = 0; at <= list.size();) {
      size_t comma = list.find(',', at);
      if (comma == std::string::npos) comma = list.size();
      sockaddr_in a{};
      a.sin_family = AF_INET;
      if (comma > at && inet_pton(AF_INET, list.substr(at, comma - at).c_str(), &a.sin_addr) == 1) sources.push_back(a);
      at = comma + 1;
    }
  }
  const char* sub_env = std::getenv("WS_SUBSCRIBE");
  const std::string sub_template = sub_env ? sub_env : R"({"op":"subscribe","id":"b"})";
  const double read_fps = std::getenv("WS_READ_FPS") ? std::atof(std::getenv("WS_READ_FPS")) : 0;
  const double slow_s = std::getenv("WS_SLOW_S") ? std::atof(std::getenv("WS_SLOW_S")) : 0;
  const long long check_last = std::getenv("WS_CHECK_LAST") ? std::atoll(std::getenv("WS_CHECK_LAST")) : 0;
  const long long check_jobs = std::getenv("WS_CHECK_JOBS") ? std::atoll(std::getenv("WS_CHECK_JOBS")) : 0;
  std::vector<long long> job_last(static_cast<size_t>(std::max(0LL, check_jobs)), 0);
  long long finals = 0, order_errors = 0, conflated_markers = 0, dropped = 0;
  auto final_of = [&](long long job) {  // the largest id <= check_last with id % J == job
    long long r = check_last % check_jobs;
    return check_last - ((r - job + check_jobs) % check_jobs);
  };

  int ep = epoll_create1(0);
  std::vector<Conn> conns(static_cast<size_t>(n));
  const std::string request = std::string("GET /ws HTTP/1.1\r\nHost: ") + host +
                              "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host, &addr.sin_addr);
  const double connect_start = Mono();
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && read_fps > 0) {
      int small = 4096;  // the kernel holds little for a slow reader: the server sees it
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    if (fd >= 0 && !sources.empty()) {
      int one = 1;  // the port is chosen at connect, per destination (no bind-time port search)
      setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      const sockaddr_in& src = sources[static_cast<size_t>(i) % sources.size()];
      if (bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) {
        std::fprintf(stderr, "ws_client_bench: bind: %s\n", std::strerror(errno));
        return 1;
      }
    }
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      std::fprintf(stderr, "ws_client_bench: connection %d: %s\n", i, std::strerror(errno));
      return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) return 1;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    conns[static_cast<size_t>(i)].fd = fd;
    conns[static_cast<size_t>(i)].sample = i % sample_every == 0;
    epoll_event ev{};
    ev.events = read_fps > 0 ? 0u : static_cast<uint32_t>(EPOLLIN);  // slow readers are read on a clock
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }

  std::vector<long long> lat;
  lat.reserve(1 << 20);
  int ready = 0;
  bool announced = false;
  double start = Mono(), ready_at = 0, next_slow = 0;
  bool slow_phase = read_fps > 0;
  std::vector<char> rb(1 << 16);
  std::vector<epoll_event> evs(256);
  long long done_conns = 0;
  for (;;) {
    double now = Mono();
    if (now - start > timeout) break;
    if (announced && hold > 0 && now - ready_at > hold) break;
    if (announced && hold == 0 && (check_jobs > 0 ? finals == check_jobs * n : done_conns == n)) break;
    if (slow_phase && announced && now - ready_at > slow_s) {
      slow_phase = false;  // now at full speed
      for (int i = 0; i < n; ++i) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = static_cast<uint32_t>(i);
        epoll_ctl(ep, EPOLL_CTL_MOD, conns[static_cast<size_t>(i)].fd, &ev);
      }
    }
    // Slow readers: about one frame's bytes per connection per tick (until subscribed,
    // everything available).
    std::vector<uint32_t> ready_list;
    size_t chunk = rb.size();
    if (slow_phase) {
      int k = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 1);
      (void)k;
      if (now >= next_slow) {
        next_slow = now + 1.0 / read_fps;
        for (int i = 0; i < n; ++i) ready_list.push_back(static_cast<uint32_t>(i));
      } else {
        timespec ts{0, 1000000};
        nanosleep(&ts, nullptr);
      }
    } else {
      int k = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 100);
      for (int e = 0; e < k; ++e) ready_list.push_back(evs[static_cast<size_t>(e)].data.u32);
    }
    for (uint32_t idx : ready_list) {
      Conn& c = conns[idx];
      bool paced = slow_phase && c.subscribed;
      for (;;) {
        ssize_t r = read(c.fd, rb.data(), paced ? 300 : chunk);
        if (r <= 0) break;
        c.buf.append(rb.data(), static_cast<size_t>(r));
        if (paced) break;
      }
      if (!c.upgraded) {
        size_t end = c.buf.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        if (c.buf.compare(0, 12, "HTTP/1.1 101") != 0) {
          std::fprintf(stderr, "ws_client_bench: upgrade refused: %.40s\n", c.buf.c_str());
          return 1;
        }
        c.buf.erase(0, end + 4);
        c.upgraded = true;
        std::string msg = sub_template;
        if (size_t at = msg.find("%d"); at != std::string::npos) msg.replace(at, 2, std::to_string(idx));
        const std::string subscribe = MaskedText(msg);
        if (write(c.fd, subscribe.data(), subscribe.size()) < 0) return 1;
      }
      size_t pos = 0;
      long long now_us = NowUs();
      while (c.buf.size() - pos >= 2) {
        const unsigned char* p = reinterpret_cast<const unsigned char*>(c.buf.data() + pos);
        size_t avail = c.buf.size() - pos;
        uint64_t len = p[1] & 0x7f;
        size_t hdr = 2;
        if (len == 126) {
          if (avail < 4) break;
          len = (uint64_t{p[2]} << 8) | p[3];
          hdr = 4;
        } else if (len == 127) {
          if (avail < 10) break;
          len = 0;
          for (int b = 0; b < 8; ++b) len = (len << 8) | p[2 + b];
          hdr = 10;
        }
        if (avail < hdr + len) break;
        const char* payload = c.buf.data() + pos + hdr;
        if ((p[0] & 0x0f) == 1 && len > 16 && std::memcmp(payload, "{\"type\":\"event\"", 15) == 0) {
          ++c.events;
          if (c.events == expected) ++done_conns;
          if (check_jobs > 0) {
            std::string_view sv(payload, len);
            // PostgreSQL's json_build_object writes "key" : value (spaces around the colon).
            auto value_at = [&sv](std::string_view key) -> long long {
              size_t k = sv.find(key);
              if (k == std::string_view::npos) return -1;
              k += key.size();
              while (k < sv.size() && (sv[k] == ' ' || sv[k] == ':' || sv[k] == '"' || sv[k] == 'b')) ++k;
              return std::atoll(std::string(sv.substr(k, 20)).c_str());
            };
            long long id = value_at("\"event\":{\"id\""), job = value_at("\"job_id\"");
            if (id < 0) id = value_at("\"id\"");
            if (id >= 0) {
              if (job >= 0 && job < check_jobs) {
                long long& lastj = job_last[static_cast<size_t>(job)];
                if (id <= lastj) ++order_errors;
                lastj = id;
                if (id == final_of(job)) ++finals;
              }
            }
          }
          if (c.sample) {
            std::string_view sv(payload, len);
            size_t t = sv.find("\"t_us\"");
            if (t != std::string_view::npos) {
              size_t q = t + 6;
              while (q < sv.size() && (sv[q] == ' ' || sv[q] == ':')) ++q;
              lat.push_back(now_us - std::atoll(std::string(sv.substr(q, 20)).c_str()));
            }
          }
        } else if ((p[0] & 0x0f) == 1 && std::string_view(payload, len).rfind("{\"type\":\"conflated\"", 0) == 0) {
          ++conflated_markers;
          dropped += std::atoll(std::string(std::string_view(payload, len).substr(30, 20)).c_str());
        } else if ((p[0] & 0x0f) == 1 && !c.subscribed && std::string_view(payload, len).find("\"subscribed\"") != std::string_view::npos) {
          c.subscribed = true;
          if (++ready == n && !announced) {
            announced = true;
            ready_at = Mono();
            std::printf("{\"ready\":%d,\"ready_s\":%.3f}\n", n, ready_at - connect_start);
            std::fflush(stdout);
          }
        }
        pos += hdr + len;
      }
      c.buf.erase(0, pos);
    }
  }
  long long total = 0, min_events = n ? conns[0].events : 0;
  for (const auto& c : conns) {
    total += c.events;
    min_events = std::min(min_events, c.events);
    close(c.fd);
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&lat](double p) -> long long {
    return lat.empty() ? -1 : lat[std::min(lat.size() - 1, static_cast<size_t>(p * static_cast<double>(lat.size())))];
  };
  std::printf("{\"connections\":%d,\"subscribed\":%d,\"events_min\":%lld,\"events_total\":%lld,\"samples\":%zu,"
              "\"p50_us\":%lld,\"p99_us\":%lld,\"p999_us\":%lld,\"max_us\":%lld,\"finals\":%lld,"
              "\"order_errors\":%lld,\"conflated_markers\":%lld,\"dropped\":%lld}\n",
              n, ready, min_events, total, lat.size(), pct(0.5), pct(0.99), pct(0.999), lat.empty() ? -1 : lat.back(),
              finals, order_errors, conflated_markers, dropped);
  return 0;
}
