// Content-Type from a file name's extension (case-insensitive), as the
// original did; application/octet-stream when unknown.
#pragma once

#include <string_view>

namespace objstore::http {

std::string_view ContentTypeForName(std::string_view name);

}  // namespace objstore::http
