// A CLI11 check shared by the command lines of objstore and objstore-cli
// (header-only: it needs CLI11, which only those two link).
#pragma once

#include <CLI/CLI.hpp>
#include <cmath>
#include <string>

namespace objstore {

// For every floating-point option: refuses NaN and the infinities ("nan",
// "-nan", "inf", "-inf", and a number too large for a double, such as 1e400),
// with "<flag>: expected a finite number, got '<value>'". CLI11's Range,
// PositiveNumber and NonNegativeNumber compare the value, and every comparison
// with NaN is false, so they let "nan" through (it then became a huge negative
// duration). The value is read as CLI11 reads it (strtold, so hexadecimal
// floats such as 0x1p-2 are numbers too). Give it before the option's range
// check, so that the message says what is wrong.
inline const CLI::Validator kFiniteNumber(
    [](std::string& value) -> std::string {
      double v = 0;
      if (!CLI::detail::lexical_cast(value, v) || !std::isfinite(v)) {
        return "expected a finite number, got '" + value + "'";
      }
      return "";
    },
    "FINITE");

}  // namespace objstore
