// tests/support/envelope_field.hpp - one field of a received envelope, parsed the simple way: the
// first "name": in the text, a string or a number (test data only, not a JSON parser).
#pragma once

#include <string>
#include <string_view>

namespace uniws_test {

inline std::string field(std::string_view json, std::string_view name) {
  // Built by appending: g++ 12 -O3 warns a false -Wrestrict on "\"" + std::string(...).
  std::string key = "\"";
  key.append(name).append("\":");
  const auto at = json.find(key);
  if (at == std::string_view::npos) return {};
  auto rest = json.substr(at + key.size());
  if (rest.front() == '"') return std::string(rest.substr(1, rest.find('"', 1) - 1));
  return std::string(rest.substr(0, rest.find_first_of(",}")));
}

}  // namespace uniws_test
