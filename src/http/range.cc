#include "http/range.h"

#include <cctype>
#include <chrono>
#include <cstring>
#include <limits>

namespace objstore::http {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses a non-empty run of digits; nullopt on anything else or overflow.
std::optional<uint64_t> ParseDigits(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view StripWeak(std::string_view tag) {
  if (tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/') tag.remove_prefix(2);
  return tag;
}

}  // namespace

RangeDecision ParseRange(std::string_view header, uint64_t size) {
  RangeDecision full;
  header = Trim(header);
  auto eq = header.find('=');
  if (eq == std::string_view::npos || !IEquals(Trim(header.substr(0, eq)), "bytes")) return full;
  std::string_view spec = Trim(header.substr(eq + 1));
  if (spec.find(',') != std::string_view::npos) return full;  // multiple ranges: not served
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return full;
  std::string_view a = Trim(spec.substr(0, dash)), b = Trim(spec.substr(dash + 1));

  RangeDecision d;
  if (a.empty()) {  // suffix: the last n bytes
    auto n = ParseDigits(b);
    if (!n) return full;
    if (*n == 0) return {RangeKind::kUnsatisfiable, {}};
    // RFC 9110 §14.1.1: the one satisfiable range of an empty representation,
    // whose zero bytes no 206 can describe: answered whole.
    if (size == 0) return full;
    d.kind = RangeKind::kPartial;
    d.range = {*n >= size ? 0 : size - *n, size - 1};
    return d;
  }
  auto first = ParseDigits(a);
  if (!first) return full;
  std::optional<uint64_t> last;
  if (!b.empty()) {
    last = ParseDigits(b);
    if (!last || *last < *first) return full;  // invalid syntax: ignore the header
  }
  if (*first >= size) return {RangeKind::kUnsatisfiable, {}};
  d.kind = RangeKind::kPartial;
  d.range = {*first, (!last || *last >= size) ? size - 1 : *last};
  return d;
}

namespace {

// True when a tag of the comma-separated list `header` equals `want` once
// `normalize` is applied to it.
template <typename Normalize>
bool AnyTagMatches(std::string_view header, std::string_view want, Normalize normalize) {
  while (!header.empty()) {
    auto comma = header.find(',');
    std::string_view tag = Trim(header.substr(0, comma));
    if (!tag.empty() && normalize(tag) == want) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

bool IfNoneMatchMatches(std::string_view header, std::string_view etag) {
  header = Trim(header);
  if (header == "*") return true;
  return AnyTagMatches(header, StripWeak(etag), StripWeak);
}

bool IfMatchMatches(std::string_view header, std::string_view etag) {
  header = Trim(header);
  if (header == "*") return true;
  if (etag.empty() || etag.starts_with("W/")) return false;
  return AnyTagMatches(header, etag, [](std::string_view tag) { return tag; });
}

std::string FormatHttpDate(std::time_t t) {
  // By hand, not strftime: names in English whatever the locale, and it runs
  // for the Last-Modified of every GET. The calendar by <chrono> arithmetic,
  // not gmtime_r, which takes glibc's time-zone lock on every call.
  using namespace std::chrono;
  static constexpr char kDays[] = "SunMonTueWedThuFriSat";
  static constexpr char kMonths[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  const sys_seconds at{seconds{t}};
  const sys_days day = floor<days>(at);
  const year_month_day ymd{day};
  const hh_mm_ss hms{at - day};
  std::string out = "Sun, 00 Jan 0000 00:00:00 GMT";
  auto two = [&](size_t pos, int v) {
    out[pos] = static_cast<char>('0' + v / 10);
    out[pos + 1] = static_cast<char>('0' + v % 10);
  };
  out.replace(0, 3, kDays + 3 * weekday{day}.c_encoding(), 3);
  two(5, static_cast<int>(static_cast<unsigned>(ymd.day())));
  out.replace(8, 3, kMonths + 3 * (static_cast<unsigned>(ymd.month()) - 1), 3);
  const int year = static_cast<int>(ymd.year());
  two(12, year / 100 % 100);
  two(14, year % 100);
  two(17, static_cast<int>(hms.hours().count()));
  two(20, static_cast<int>(hms.minutes().count()));
  two(23, static_cast<int>(hms.seconds().count()));
  return out;
}

std::optional<std::time_t> ParseHttpDate(std::string_view text) {
  std::string s(Trim(text));
  static const char* const kFormats[] = {
      "%a, %d %b %Y %H:%M:%S GMT",  // IMF-fixdate
      "%A, %d-%b-%y %H:%M:%S GMT",  // RFC 850
      "%a %b %e %H:%M:%S %Y",       // asctime
  };
  for (const char* fmt : kFormats) {
    std::tm tm{};
    const char* end = strptime(s.c_str(), fmt, &tm);
    if (end != nullptr && *end == '\0') return timegm(&tm);
  }
  return std::nullopt;
}

}  // namespace objstore::http
