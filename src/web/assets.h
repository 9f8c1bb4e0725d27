// The dashboard's files (src/web/, compiled in by tools/embed.py) as HTTP resources:
// which path names which file, with what Content-Type, and the response to a GET or
// HEAD for it. Pure: no I/O.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/embedded.h"
#include "ws/http.h"

namespace reactor::web {

struct Asset {
  std::string path;               // "/", "/app.js", ...
  std::string_view content_type;  // static storage
  std::string_view body;          // the embedded bytes; static storage
  std::string etag;               // strong validator: a hash of the bytes, quoted
};

// Content-Type for a file name by its extension; application/octet-stream when unknown.
std::string_view ContentTypeFor(std::string_view name);

// A path → asset table built once from a list of files. index.html is served at "/"
// (and at "/index.html"); every other file at "/" + its name. Paths are matched
// exactly (no percent-decoding, no directories, no query).
//
// The table keeps views into `files`, which must outlive it (embedded data does).
class Assets {
 public:
  explicit Assets(std::span<const EmbeddedFile> files);

  // The asset at `path`, or nullptr. The pointer lives as long as the table.
  const Asset* Find(std::string_view path) const;
  const std::vector<Asset>& all() const { return assets_; }

  // The table of reactor::embedded::web, built on first use. Loop thread only.
  static const Assets& Embedded();

 private:
  std::vector<Asset> assets_;
};

// The answer to `req` for `asset`: 200 with the bytes, Cache-Control: no-cache and the
// ETag; 304 when If-None-Match names the ETag (or is "*"); 405 for a method other
// than GET or HEAD. The server itself drops the body of a HEAD answer.
ws::Response Serve(const Asset& asset, const ws::Request& req);

}  // namespace reactor::web
