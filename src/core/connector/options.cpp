#include "core/connector/options.hpp"

#include <fmt/format.h>

#include "core/errors.hpp"

namespace dpone {

ConnectorOptions::ConnectorOptions(const nlohmann::json& options, std::string where)
    : options_(options.is_object() ? options : nlohmann::json::object()),
      where_(std::move(where)) {}

std::optional<std::string> ConnectorOptions::string(const char* key) const { return read(key, false); }

std::optional<std::string> ConnectorOptions::string_or_integer(const char* key) const { return read(key, true); }

std::optional<std::string> ConnectorOptions::read(const char* key, bool integer_as_text) const {
  auto it = options_.find(key);
  if (it == options_.end() || it->is_null()) return std::nullopt;
  std::string value;
  if (it->is_string()) {
    value = it->get<std::string>();
  } else if (integer_as_text && it->is_number_integer()) {
    value = it->dump();
  } else {
    throw Error(ErrorCode::ConfigWrongType,
                fmt::format("{} option `{}` must be a string, got {}", where_, key, it->dump()));
  }
  if (value.empty()) {
    throw Error(ErrorCode::ConfigBadValue,
                fmt::format("{} option `{}` must not be empty", where_, key));
  }
  return value;
}

std::vector<std::string> ConnectorOptions::string_list(const char* key) const {
  auto it = options_.find(key);
  if (it == options_.end() || it->is_null()) return {};
  if (it->is_string()) return {it->get<std::string>()};
  std::vector<std::string> out;
  if (it->is_array()) {
    for (const auto& v : *it) {
      if (!v.is_string()) {
        out.clear();
        break;
      }
      out.push_back(v.get<std::string>());
    }
    if (out.size() == it->size()) return out;
  }
  throw Error(ErrorCode::ConfigWrongType,
              fmt::format("{} option `{}` must be a list of column names, got {}", where_, key,
                          it->dump()));
}

}  // namespace dpone
