#include "web/assets.h"

#include <cstdint>
#include <cstdio>

namespace reactor::web {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// FNV-1a: the validator only has to change when the bytes do; it is not a security
// boundary (the bytes are the binary's own).
std::string EtagOf(std::string_view body) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// If-None-Match uses weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
bool NoneMatchHits(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view item = Trim(header.substr(0, comma));
    if (item == "*") return true;
    if (item.substr(0, 2) == "W/") item.remove_prefix(2);
    if (item == etag) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

std::string_view ContentTypeFor(std::string_view name) {
  if (EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (EndsWith(name, ".js") || EndsWith(name, ".mjs")) return "text/javascript; charset=utf-8";
  if (EndsWith(name, ".css")) return "text/css; charset=utf-8";
  if (EndsWith(name, ".svg")) return "image/svg+xml";
  if (EndsWith(name, ".json")) return "application/json";
  if (EndsWith(name, ".png")) return "image/png";
  if (EndsWith(name, ".ico")) return "image/x-icon";
  return "application/octet-stream";
}

Assets::Assets(std::span<const EmbeddedFile> files) {
  for (const auto& f : files) {
    if (f.name.empty()) continue;  // embed.py's filler entry for an empty list
    Asset a;
    a.path = "/" + std::string(f.name);
    a.content_type = ContentTypeFor(f.name);
    a.body = f.data;
    a.etag = EtagOf(f.data);
    if (f.name == "index.html") {
      Asset root = a;
      root.path = "/";
      assets_.push_back(std::move(root));
    }
    assets_.push_back(std::move(a));
  }
}

const Asset* Assets::Find(std::string_view path) const {
  for (const auto& a : assets_) {
    if (a.path == path) return &a;
  }
  return nullptr;
}

const Assets& Assets::Embedded() {
  static const Assets table(embedded::web);
  return table;
}

ws::Response Serve(const Asset& asset, const ws::Request& req) {
  if (req.method != "GET" && req.method != "HEAD") return ws::MethodNotAllowed("GET, HEAD");
  ws::Response r;
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("ETag", asset.etag);
  // The page is the reactor's own; nothing in it may come from elsewhere.
  if (asset.content_type.substr(0, 9) == "text/html") {
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                           "style-src 'self'; script-src 'self'; base-uri 'none'; frame-ancestors 'none'");
  }
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  const std::string* inm = req.Header("if-none-match");
  if (inm && NoneMatchHits(*inm, asset.etag)) {
    r.status = 304;
    return r;
  }
  r.content_type = std::string(asset.content_type);
  r.body = std::string(asset.body);
  return r;
}

}  // namespace reactor::web
