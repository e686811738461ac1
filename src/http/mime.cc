#include "http/mime.h"

#include <array>
#include <cctype>
#include <string>
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
  std::string ext(name.substr(dot + 1));
  if (ext.size() > 8) return "application/octet-stream";
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [e, type] : kTypes) {
    if (e == ext) return type;
  }
  return "application/octet-stream";
}

}  // namespace objstore::http
