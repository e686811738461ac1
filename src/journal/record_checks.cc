#include "journal/record_checks.h"

#include <fmt/format.h>

#include <cstdint>
#include <nlohmann/json.hpp>

namespace objstore {

using json = nlohmann::json;

namespace {

// RFC 3629: shortest forms only, no surrogates, nothing past U+10FFFF.
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t extra = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      extra = 1, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((extra == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (extra == 3 && (cp < 0x10000 || cp > 0x10ffff))) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

}  // namespace

Result<std::string> ParseUserMeta(std::string_view raw) {
  if (raw.empty()) return std::string("{}");
  json doc = json::parse(raw, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Status::Invalid("bad X-Meta-UserMeta: expected a JSON object of string values");
  }
  for (const auto& [k, v] : doc.items()) {
    if (!v.is_string()) {
      return Status::Invalid("bad X-Meta-UserMeta: the value of '" + k + "' is not a string");
    }
  }
  return EscapeDel(doc.dump());  // dump() leaves DEL raw
}

std::string EscapeDel(std::string_view json_text) {
  std::string out;
  for (char c : json_text) {
    if (c == '\x7f') {
      out += "\\u007f";
    } else {
      out += c;
    }
  }
  return out;
}

Status CheckName(std::string_view name) {
  if (name.size() > kMaxNameBytes) {
    return Status::Invalid(fmt::format("bad X-Meta-Name: longer than {} bytes", kMaxNameBytes));
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return Status::Invalid("bad X-Meta-Name: control character");
  }
  // A name is stored in JSON (journal, private API, cold store metadata),
  // which holds only UTF-8 text.
  if (!IsUtf8(name)) return Status::Invalid("bad X-Meta-Name: not UTF-8");
  return Status::Ok();
}

bool IsEntityTag(std::string_view etag) {
  if (etag.starts_with("W/")) etag.remove_prefix(2);
  if (etag.size() < 2 || etag.front() != '"' || etag.back() != '"') return false;
  for (unsigned char c : etag.substr(1, etag.size() - 2)) {
    if (c < 0x21 || c == '"' || c > 0x7e) return false;
  }
  return true;
}

}  // namespace objstore
