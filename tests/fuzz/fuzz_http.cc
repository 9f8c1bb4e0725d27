// Fuzzes RequestParser (and the handshake on what it yields): a stream of pipelined
// requests parsed whole and in random chunks must give the same requests and errors, and
// every request must respect the parser's contract.
//
// Input: [max header bytes u16][max body bytes u16][cut count u8][cuts u16...][stream...]
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "ws/handshake.h"
#include "ws/http.h"

using namespace reactor::ws;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

bool IsLower(const std::string& s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

// One line per request or error: what a server would act on.
std::string Summary(const Request& r) {
  std::string s = r.method + " " + r.target + " " + r.path + " " + std::to_string(r.http_major) +
                  "." + std::to_string(r.http_minor) + (r.keep_alive ? " ka" : "") +
                  (r.upgrade ? " up" : "") + "|";
  for (const auto& [k, v] : r.query) s += k + "=" + v + "&";
  for (const auto& [k, v] : r.headers) s += k + ":" + v + "\n";
  return s + "|" + r.body;
}

std::vector<std::string> Run(RequestLimits limits, const std::vector<std::vector<char>>& chunks) {
  RequestParser p(limits);
  std::vector<std::string> out;
  bool done = false;
  for (const auto& c : chunks) {
    std::string_view in = reactor::fuzz::View(c);
    while (!in.empty() && !done) {
      ParseStatus st = p.Feed(in);
      Check(st.consumed <= in.size());
      in.remove_prefix(st.consumed);
      if (st.state == ParseStatus::State::kNeedMore) {
        Check(in.empty());
        break;
      }
      if (st.state == ParseStatus::State::kError) {
        Check(st.http_status == 400 || st.http_status == 413 || st.http_status == 431 ||
              st.http_status == 505);
        Check(!st.error.empty());
        Check(!ErrorResponse(st).Serialize().empty());
        // Only the status: which of two faults is named first may depend on where the
        // chunks were cut (a header name is checked as its pieces arrive).
        out.push_back("error " + std::to_string(st.http_status));
        done = true;
        break;
      }
      const Request& r = p.request();
      Check(!r.method.empty() && !r.path.empty());
      Check(r.body.size() <= limits.max_body_bytes);
      for (const auto& h : r.headers) Check(IsLower(h.first) && !h.first.empty());
      UpgradeCheck u = CheckUpgrade(r);
      if (u.ok()) {
        Check(u.accept.size() == 28);
        Check(SwitchingProtocols(u.accept).size() > 28);
      } else {
        Check(UpgradeFailure(u).status == u.status);
      }
      out.push_back(Summary(r));
      // Past a Connection: close or an Upgrade, the bytes are not HTTP.
      if (!r.keep_alive || r.upgrade) {
        done = true;
        break;
      }
      p.Reset();
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  reactor::fuzz::Input in(data, size);
  RequestLimits limits;
  limits.max_header_bytes = 16 + in.U16() % 8192;
  limits.max_body_bytes = in.U16() % 2048;
  auto cuts = reactor::fuzz::ReadCuts(in);
  std::string stream = in.Rest();
  auto whole = Run(limits, {std::vector<char>(stream.begin(), stream.end())});
  auto split = Run(limits, reactor::fuzz::Split(cuts, stream));
  Check(whole == split);
  return 0;
}
