// Files compiled into the binary at build time (tools/embed.py): the SQL migrations
// and the dashboard assets. The data lives in static storage for the whole program.
#pragma once

#include <span>
#include <string_view>

namespace reactor {

struct EmbeddedFile {
  std::string_view name;  // base name, e.g. "001_schema.sql"
  std::string_view data;  // exact file bytes
};

namespace embedded {
// sql/migrations/NNN_*.sql (not the .down.sql rollbacks), in version order.
extern const std::span<const EmbeddedFile> migrations;
// src/web/: the dashboard's index.html, JavaScript modules and stylesheet.
extern const std::span<const EmbeddedFile> web;
}  // namespace embedded

}  // namespace reactor
