#include "http/mime.h"

#include <array>
#include <string_view>
#include <utility>

namespace objstore::http {

std::string_view ContentTypeForName(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 40> kTypes{{
      {"txt", "text/plain; charset=utf-8"},  {"log", "text/plain; charset=utf-8"},
      {"md", "text/markdown; charset=utf-8"}, {"csv", "text/csv; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},   {"html", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},    {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
      {"xml", "application/xml"},            {"yaml", "application/yaml"},
      {"yml", "application/yaml"},           {"pdf", "application/pdf"},
      {"zip", "application/zip"},            {"gz", "application/gzip"},
      {"tgz", "application/gzip"},           {"tar", "application/x-tar"},
      {"xz", "application/x-xz"},            {"zst", "application/zstd"},
      {"bz2", "application/x-bzip2"},        {"7z", "application/x-7z-compressed"},
      {"wasm", "application/wasm"},          {"bin", "application/octet-stream"},
      {"png", "image/png"},                  {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},                {"gif", "image/gif"},
      {"webp", "image/webp"},                {"avif", "image/avif"},
      {"svg", "image/svg+xml"},              {"ico", "image/vnd.microsoft.icon"},
      {"mp4", "video/mp4"},                  {"webm", "video/webm"},
      {"mp3", "audio/mpeg"},                 {"ogg", "audio/ogg"},
      {"wav", "audio/wav"},                  {"woff", "font/woff"},
      {"woff2", "font/woff2"},               {"parquet", "application/vnd.apache.parquet"},
  }};
  auto dot = name.rfind('.');
  if (dot == std::string_view::npos || dot + 1 >= name.size()) return "application/octet-stream";
  const std::string_view raw = name.substr(dot + 1);
  if (raw.size() > 8) return "application/octet-stream";
  // Lower-cased ASCII into a local buffer: this runs for every GET.
  char lower[8];
  for (size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    lower[i] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  }
  const std::string_view ext(lower, raw.size());
  for (const auto& [e, type] : kTypes) {
    if (e.size() == ext.size() && e[0] == ext[0] && e == ext) return type;
  }
  return "application/octet-stream";
}

}  // namespace objstore::http
