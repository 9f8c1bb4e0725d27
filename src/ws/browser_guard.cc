#include "ws/browser_guard.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace reactor {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsDigit(char ch) { return ch >= '0' && ch <= '9'; }
bool IsAlpha(char ch) { return ch >= 'a' && ch <= 'z'; }

// 1-5 digits, 1..65535.
std::optional<uint16_t> ParsePort(std::string_view s) {
  if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), IsDigit)) return std::nullopt;
  unsigned v = 0;
  for (char ch : s) v = v * 10 + static_cast<unsigned>(ch - '0');
  if (v == 0 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

uint16_t DefaultPort(std::string_view scheme) {
  if (scheme == "http" || scheme == "ws") return 80;
  if (scheme == "https" || scheme == "wss") return 443;
  return 0;
}

std::string Serialize(const Origin& o) {
  std::string host = o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host;
  std::string out = o.scheme + "://" + host;
  if (o.port != 0 && o.port != DefaultPort(o.scheme)) out += ":" + std::to_string(o.port);
  return out;
}

// Strict dotted quad: four decimal parts 0..255 without leading zeros (a browser sends
// the canonical form; "127.evil.example" or "0177.0.0.1" is no loopback literal).
bool ParseIPv4(std::string_view s, uint8_t out[4]) {
  for (int i = 0; i < 4; ++i) {
    size_t n = 0;
    while (n < s.size() && IsDigit(s[n])) ++n;
    if (n == 0 || n > 3 || (n > 1 && s[0] == '0')) return false;
    unsigned v = 0;
    for (size_t k = 0; k < n; ++k) v = v * 10 + static_cast<unsigned>(s[k] - '0');
    if (v > 255) return false;
    out[i] = static_cast<uint8_t>(v);
    s.remove_prefix(n);
    if (i < 3) {
      if (s.empty() || s[0] != '.') return false;
      s.remove_prefix(1);
    }
  }
  return s.empty();
}

bool Contains(const std::vector<std::string>& list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

GuardVerdict RefuseHost(std::string_view value, std::string reason) {
  GuardVerdict v;
  v.refusal = GuardVerdict::Refusal::kHost;
  v.http_status = 421;
  v.reason = std::move(reason);
  v.detail = "Host '" + LogSafe(value) + "'";
  return v;
}

GuardVerdict RefuseOrigin(std::string_view value, std::string reason) {
  GuardVerdict v;
  v.refusal = GuardVerdict::Refusal::kOrigin;
  v.http_status = 403;
  v.reason = std::move(reason);
  v.detail = "Origin '" + LogSafe(value) + "'";
  return v;
}

}  // namespace

std::optional<HostName> ParseHostName(std::string_view text) {
  std::string s = Lower(text);
  std::string_view rest = s;
  HostName out;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view inside = rest.substr(1, close - 1);
    in6_addr addr{};
    if (std::string(inside).find('%') != std::string::npos) return std::nullopt;  // no zone ids
    if (inet_pton(AF_INET6, std::string(inside).c_str(), &addr) != 1) return std::nullopt;
    out.host = std::string(inside);
    rest.remove_prefix(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      auto port = ParsePort(rest.substr(1));
      if (!port) return std::nullopt;
      out.port = *port;
      out.has_port = true;
    }
    return out;
  }
  size_t colon = rest.find(':');
  std::string_view host = rest.substr(0, colon);
  if (colon != std::string_view::npos) {
    auto port = ParsePort(rest.substr(colon + 1));  // a second ':' fails here too
    if (!port) return std::nullopt;
    out.port = *port;
    out.has_port = true;
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > 253) return std::nullopt;
  for (char ch : host) {
    if (!IsAlpha(ch) && !IsDigit(ch) && ch != '-' && ch != '.' && ch != '_') return std::nullopt;
  }
  out.host = std::string(host);
  return out;
}

std::optional<Origin> ParseOrigin(std::string_view text) {
  std::string s = Lower(text);
  size_t sep = s.find("://");
  if (sep == std::string::npos || sep == 0) return std::nullopt;
  Origin o;
  o.scheme = s.substr(0, sep);
  if (!IsAlpha(o.scheme[0])) return std::nullopt;
  for (char ch : o.scheme) {
    if (!IsAlpha(ch) && !IsDigit(ch) && ch != '+' && ch != '-' && ch != '.') return std::nullopt;
  }
  std::string_view authority = std::string_view(s).substr(sep + 3);
  if (authority.find_first_of("/?#@") != std::string_view::npos) return std::nullopt;
  auto hn = ParseHostName(authority);
  if (!hn) return std::nullopt;
  o.host = hn->host;
  o.port = hn->has_port ? hn->port : DefaultPort(o.scheme);
  return o;
}

bool IsLoopbackName(std::string_view host) {
  if (host == "localhost") return true;
  uint8_t v4[4];
  if (ParseIPv4(host, v4)) return v4[0] == 127;
  if (host.find(':') == std::string_view::npos) return false;
  in6_addr a{};
  if (inet_pton(AF_INET6, std::string(host).c_str(), &a) != 1) return false;
  static const uint8_t kLoop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a.s6_addr, kLoop, 16) == 0 ||
         (std::memcmp(a.s6_addr, kMapped, 12) == 0 && a.s6_addr[12] == 127);
}

GuardVerdict CheckHost(const std::string* host, const BrowserPolicy& policy) {
  if (!policy.check_host || !host) return {};
  auto hn = ParseHostName(*host);
  if (!hn) return RefuseHost(*host, "the Host header is not host[:port]");
  if (IsLoopbackName(hn->host)) return {};
  if (auto listen = ParseHostName(policy.listen_host.find(':') != std::string::npos
                                      ? "[" + policy.listen_host + "]"
                                      : policy.listen_host);
      listen && listen->host == hn->host) {
    return {};
  }
  for (const HostName& p : policy.public_hosts) {
    if (p.host != hn->host) continue;
    if (!p.has_port) return {};
    if (hn->has_port ? hn->port == p.port : (p.port == 80 || p.port == 443)) return {};
  }
  return RefuseHost(*host,
                    "this server does not answer for that Host (DNS rebinding protection); "
                    "name it with --public-host");
}

GuardVerdict CheckOrigin(const std::string* origin, const std::string* host,
                         const BrowserPolicy& policy) {
  if (!origin || Contains(policy.allowed_origins, "*")) return {};
  std::string o = Lower(*origin);
  if (o == "null") {
    if (Contains(policy.allowed_origins, "null")) return {};
    return RefuseOrigin(*origin, "a page with an opaque (null) origin may not open this WebSocket; "
                                 "list null in --allowed-origins to allow it");
  }
  auto parsed = ParseOrigin(o);
  if (!parsed) return RefuseOrigin(*origin, "the Origin header is not scheme://host[:port]");
  if (Contains(policy.allowed_origins, Serialize(*parsed))) return {};
  if (host && (parsed->scheme == "http" || parsed->scheme == "https")) {
    if (auto hn = ParseHostName(*host); hn && hn->host == parsed->host) {
      uint16_t port = hn->has_port ? hn->port : DefaultPort(parsed->scheme);
      if (port == parsed->port) return {};
    }
  }
  return RefuseOrigin(*origin, "a page on another site may not open this WebSocket; "
                               "list its origin in --allowed-origins");
}

Result<std::vector<std::string>> ParseAllowedOrigins(const std::vector<std::string>& entries) {
  std::vector<std::string> out;
  for (const std::string& raw : entries) {
    std::string_view e = Trim(raw);
    if (e.empty()) continue;
    if (e == "*" || Lower(e) == "null") {
      out.push_back(Lower(e));
      continue;
    }
    std::string_view bare = e;
    if (bare.size() > 1 && bare.back() == '/') bare.remove_suffix(1);
    auto o = ParseOrigin(bare);
    if (!o) {
      return Status::Error("'" + LogSafe(e) +
                           "' is not an origin (scheme://host[:port], e.g. https://app.example.com), * or null");
    }
    out.push_back(Serialize(*o));
  }
  return out;
}

Result<std::vector<HostName>> ParsePublicHosts(const std::vector<std::string>& entries) {
  std::vector<HostName> out;
  for (const std::string& raw : entries) {
    std::string_view e = Trim(raw);
    if (e.empty()) continue;
    auto hn = ParseHostName(e);
    if (!hn) return Status::Error("'" + LogSafe(e) + "' is not host or host:port");
    out.push_back(*hn);
  }
  return out;
}

std::string LogSafe(std::string_view s, size_t max) {
  std::string out;
  for (char ch : s.substr(0, max)) out += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace reactor
