// Records of a page: where they are (records_path), which columns they make (inferred
// and/or declared, flattened and split into child tables under child_tables), and their
// cells in canonical text form.
#include <charconv>
#include <map>
#include <set>

#include <fmt/format.h>

#include "connectors/rest/rest_connector.hpp"
#include "core/codecs/inference.hpp"
#include "core/codecs/values.hpp"
#include "core/errors.hpp"

namespace dpone::rest {

namespace {

constexpr const char* kSep = "__";
constexpr const char* kCountSuffix = "__count";

std::string join_path(const std::vector<std::string>& path) {
  std::string out;
  for (const auto& p : path) out += (out.empty() ? "" : kSep) + p;
  return out;
}

const char* kind_name(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return "a number";
    default:
      return "a value";
  }
}

// A value the inferrer can classify: scalars exactly; containers only by their kind.
nlohmann::json plain(const Json& v) {
  switch (v.type()) {
    case Json::value_t::object:
      return nlohmann::json::object();
    case Json::value_t::array:
      return nlohmann::json::array();
    case Json::value_t::string:
      return v.get_ref<const std::string&>();
    case Json::value_t::boolean:
      return v.get<bool>();
    case Json::value_t::number_integer:
      return v.get<int64_t>();
    case Json::value_t::number_unsigned:
      return v.get<uint64_t>();
    case Json::value_t::number_float:
      return v.get<double>();
    default:
      return nullptr;
  }
}

// Builds one table's columns as values are observed, keeping first-seen order.
class TableBuilder {
 public:
  TableBuilder() : inferrer_({}) {}

  void observe(const std::string& name, ColumnSource source, const Json& value) {
    int i = inferrer_.find(name);
    if (i < 0) {
      inferrer_.add_column(name);
      i = static_cast<int>(sources_.size());
      sources_.push_back(std::move(source));
      only_nulls_.push_back(true);
    }
    if (!value.is_null()) only_nulls_[static_cast<size_t>(i)] = false;
    inferrer_.observe_json(static_cast<size_t>(i), plain(value));
  }

  // Walks an object's keys: leaves become columns; under child_tables nested objects are
  // flattened (a__b) and lists are reported to `on_list` (root records only).
  template <typename OnList>
  void walk(const Json& object, std::vector<std::string>& prefix, bool flatten, bool lists,
            OnList&& on_list) {
    for (const auto& [key, value] : object.items()) {
      prefix.push_back(key);
      if (flatten && value.is_object()) {
        containers_.insert(join_path(prefix));
        walk(value, prefix, flatten, lists, on_list);
      } else if (flatten && lists && value.is_array()) {
        containers_.insert(join_path(prefix));
        Json count = static_cast<int64_t>(value.size());
        observe(join_path(prefix) + kCountSuffix, {ColumnSource::Kind::ListLength, prefix}, count);
        on_list(prefix, value);
      } else {
        observe(join_path(prefix), {ColumnSource::Kind::Field, prefix}, value);
      }
      prefix.pop_back();
    }
  }

  // The layout, with declared types applied and declared-but-unseen columns appended.
  Layout finish(const LayoutOptions& options, bool flatten, const std::string& where) {
    Schema inferred = inferrer_.result();
    Layout layout;
    std::map<std::string, LogicalType> declared(options.declared.begin(), options.declared.end());
    for (size_t i = 0; i < inferred.columns.size(); ++i) {
      Column col = inferred.columns[i];
      // A key that was null where other records held an object or list is that
      // container, already represented by its flattened columns.
      if (only_nulls_[i] && containers_.count(col.name)) continue;
      if (!options.infer && !declared.count(col.name) &&
          sources_[i].kind == ColumnSource::Kind::Field)
        continue;
      if (auto it = declared.find(col.name); it != declared.end()) {
        col.type = it->second;
        declared.erase(it);
      }
      layout.schema.columns.push_back(col);
      layout.sources.push_back(sources_[i]);
    }
    for (const auto& [name, type] : options.declared) {
      if (!declared.count(name)) continue;
      layout.schema.columns.push_back(Column{name, type, true});
      const std::string suffix = kCountSuffix;
      if (flatten && name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        // A list's count column whose list the sample did not hold.
        layout.sources.push_back({ColumnSource::Kind::ListLength,
                                  split_sep(name.substr(0, name.size() - suffix.size()))});
        continue;
      }
      std::vector<std::string> path = flatten ? split_sep(name) : std::vector<std::string>{name};
      layout.sources.push_back({ColumnSource::Kind::Field, path});
    }
    (void)where;
    return layout;
  }

  LogicalType type_of(const std::string& name) const {
    Schema s = inferrer_.result();
    int i = s.find(name);
    return i < 0 ? LogicalType::of(TypeId::String) : s.columns[static_cast<size_t>(i)].type;
  }

  static std::vector<std::string> split_sep(const std::string& name) {
    std::vector<std::string> out;
    size_t i = 0;
    while (true) {
      size_t at = name.find(kSep, i);
      out.push_back(name.substr(i, at == std::string::npos ? std::string::npos : at - i));
      if (at == std::string::npos) break;
      i = at + 2;
    }
    return out;
  }

 private:
  TypeInferrer inferrer_;
  std::vector<ColumnSource> sources_;
  std::vector<bool> only_nulls_;
  std::set<std::string> containers_;
};

void require_columns(const Schema& schema, const std::vector<std::string>& names,
                     const std::string& where) {
  for (const auto& n : names) {
    if (schema.find(n) < 0) {
      throw Error(ErrorCode::ConfigInvalid,
                  fmt::format("{}: primary_key column '{}' is not a column of the records "
                              "(columns: {})",
                              where, n, fmt::join(schema.names(), ", ")),
                  "name a field the records carry, or declare it under `columns`");
    }
  }
}

}  // namespace

std::vector<std::string> split_path(const std::string& dotted) {
  std::vector<std::string> out;
  if (dotted.empty()) return out;
  size_t i = 0;
  while (true) {
    size_t dot = dotted.find('.', i);
    out.push_back(dotted.substr(i, dot == std::string::npos ? std::string::npos : dot - i));
    if (dot == std::string::npos) break;
    i = dot + 1;
  }
  return out;
}

const Json* value_at(const Json& value, const std::vector<std::string>& path, size_t from) {
  const Json* v = &value;
  for (size_t i = from; i < path.size(); ++i) {
    const std::string& key = path[i];
    if (!v->is_object()) return nullptr;
    auto it = v->find(key);
    if (it == v->end()) return nullptr;
    v = &*it;
  }
  return v;
}

const Json* records_at(const Json& body, const std::string& path, const std::string& where) {
  const Json* v = &body;
  std::string walked;
  for (const auto& key : split_path(path)) {
    walked += (walked.empty() ? "" : ".") + key;
    if (!v->is_object()) {
      throw Error(ErrorCode::InputMalformed,
                  fmt::format("{}: records_path '{}': '{}' is {}, not an object", where, path,
                              walked, kind_name(*v)),
                  "check `records_path` against a response of the API; nothing was loaded");
    }
    auto it = v->find(key);
    if (it == v->end()) {
      std::vector<std::string> keys;
      for (const auto& [k, x] : v->items()) keys.push_back(k);
      throw Error(ErrorCode::InputMalformed,
                  fmt::format("{}: the response has no '{}' (records_path '{}'); keys there: {}",
                              where, walked, path, fmt::join(keys, ", ")),
                  "check `records_path` against a response of the API; nothing was loaded");
    }
    v = &*it;
  }
  if (v->is_null()) return nullptr;
  if (!v->is_array()) {
    throw Error(ErrorCode::InputMalformed,
                fmt::format("{}: records_path '{}' is {}, expected an array of records", where,
                            path.empty() ? "(the body)" : path, kind_name(*v)),
                "set `records_path` to the array of records (e.g. data or data.items)");
  }
  return v;
}

std::vector<std::string> child_table_names(const std::vector<const Json*>& records) {
  TableBuilder root;
  std::vector<std::string> names;
  std::vector<std::string> prefix;
  for (const Json* r : records) {
    root.walk(*r, prefix, true, true, [&](const std::vector<std::string>& p, const Json&) {
      std::string n = join_path(p);
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    });
  }
  return names;
}

Layout infer_layout(const std::vector<const Json*>& records, const LayoutOptions& options,
                    const std::string& where) {
  const bool flatten = options.normalize == Normalize::ChildTables;
  TableBuilder root;
  TableBuilder child;
  std::vector<std::string> list_path;
  bool child_seen = false;
  std::vector<std::string> prefix;
  for (const Json* r : records) {
    root.walk(*r, prefix, flatten, flatten,
              [&](const std::vector<std::string>& p, const Json& list) {
                if (options.child_table.empty() || join_path(p) != options.child_table) return;
                child_seen = true;
                list_path = p;
                std::vector<std::string> element_prefix;
                for (const auto& e : list) {
                  if (e.is_object()) {
                    child.walk(e, element_prefix, true, false, [](const auto&, const auto&) {});
                  } else {
                    child.observe("value", {ColumnSource::Kind::ElementValue, {}}, e);
                  }
                }
              });
  }
  LayoutOptions root_options = options;
  if (!options.child_table.empty()) root_options.declared.clear();
  Layout parent = root.finish(root_options, flatten, where);
  for (const auto& k : options.primary_key) {
    int i = parent.schema.find(k);
    if (i >= 0) parent.schema.columns[static_cast<size_t>(i)].nullable = false;
  }
  if (options.child_table.empty()) {
    if (options.infer || !options.primary_key.empty())
      require_columns(parent.schema, options.primary_key, where);
    parent.schema.primary_key = options.primary_key;
    return parent;
  }

  // A child table: the parent's key, the list index, then the elements' fields.
  if (!child_seen) {
    auto names = child_table_names(records);
    throw Error(ErrorCode::ConfigInvalid,
                fmt::format("{}: child_table '{}' is not a list in the sampled records; lists "
                            "found: {}",
                            where, options.child_table,
                            names.empty() ? std::string("none")
                                          : fmt::format("{}", fmt::join(names, ", "))),
                "name a list field (nested lists are flattened with __, e.g. customer__addresses)");
  }
  if (options.primary_key.empty()) {
    throw Error(ErrorCode::ConfigMissingKey,
                fmt::format("{}: child_table '{}' needs the parent's primary_key to link its rows",
                            where, options.child_table),
                "set `primary_key` to the field that identifies a record (e.g. id)");
  }
  require_columns(parent.schema, options.primary_key, where);
  Layout out;
  out.list_path = list_path;
  for (const auto& k : options.primary_key) {
    const Column& pc = parent.schema.columns[static_cast<size_t>(parent.schema.find(k))];
    out.schema.columns.push_back(Column{"_parent_" + k, pc.type, false});
    out.sources.push_back(parent.sources[static_cast<size_t>(parent.schema.find(k))]);
    out.sources.back().kind = ColumnSource::Kind::ParentKey;
    out.schema.primary_key.push_back("_parent_" + k);
  }
  out.schema.columns.push_back(Column{"_index", LogicalType::of(TypeId::Int64), false});
  out.sources.push_back({ColumnSource::Kind::Index, {}});
  out.schema.primary_key.push_back("_index");
  LayoutOptions element_options = options;
  std::erase_if(element_options.declared,
                [&](const auto& d) { return out.schema.find(d.first) >= 0; });  // link columns
  Layout elements = child.finish(element_options, true, where);
  for (size_t i = 0; i < elements.schema.columns.size(); ++i) {
    if (out.schema.find(elements.schema.columns[i].name) >= 0) {
      throw Error(ErrorCode::ConfigInvalid,
                  fmt::format("{}: child_table '{}': the elements carry a field '{}', which "
                              "collides with the link column of that name",
                              where, options.child_table, elements.schema.columns[i].name));
    }
    out.schema.columns.push_back(elements.schema.columns[i]);
    out.sources.push_back(elements.sources[i]);
  }
  return out;
}

bool json_cell(const LogicalType& type, const Json& value, std::string& out, std::string& error) {
  using value_t = Json::value_t;
  if (value.is_null()) return false;
  std::optional<ValueError> e;
  char buf[64];
  if (type.id == TypeId::Json) {
    out = value.dump();
    return true;
  }
  switch (value.type()) {
    case value_t::object:
    case value_t::array:
      if (type.id != TypeId::String) {
        error = fmt::format("{} is not a valid {}", kind_name(value), type.to_string());
        throw Error(ErrorCode::TypeMismatch, error);
      }
      e = canonicalize(type, value.dump(), out);
      break;
    case value_t::string:
      e = canonicalize(type, value.get_ref<const std::string&>(), out);
      break;
    case value_t::boolean:
      e = canonicalize(type, value.get<bool>() ? "true" : "false", out);
      break;
    case value_t::number_integer: {
      auto r = std::to_chars(buf, buf + sizeof buf, value.get<int64_t>());
      e = canonicalize(type, std::string_view(buf, static_cast<size_t>(r.ptr - buf)), out);
      break;
    }
    case value_t::number_unsigned: {
      auto r = std::to_chars(buf, buf + sizeof buf, value.get<uint64_t>());
      e = canonicalize(type, std::string_view(buf, static_cast<size_t>(r.ptr - buf)), out);
      break;
    }
    case value_t::number_float: {
      auto r = std::to_chars(buf, buf + sizeof buf, value.get<double>());
      e = canonicalize(type, std::string_view(buf, static_cast<size_t>(r.ptr - buf)), out);
      break;
    }
    default:
      error = fmt::format("{} is not a valid {}", kind_name(value), type.to_string());
      throw Error(ErrorCode::TypeMismatch, error);
  }
  if (e) {
    error = e->reason;
    throw Error(e->code, e->reason);
  }
  return true;
}

size_t append_rows(const Layout& layout, const Json& record, RecordBatch& batch,
                   const std::string& where, std::string& scratch) {
  const size_t start = batch.num_rows();
  std::string error;
  auto put = [&](size_t c, const Json* v) {
    if (v == nullptr || v->is_null()) {
      batch.append_null();
      return;
    }
    try {
      json_cell(layout.schema.columns[c].type, *v, scratch, error);
    } catch (const Error& e) {
      batch.truncate_to_rows(start);
      throw Error(e.code(),
                  fmt::format("{}column '{}': {}", where.empty() ? "" : where + ": ",
                              layout.schema.columns[c].name, e.what()),
                  "declare the column's type under `columns` (e.g. string or json), or fix the "
                  "API's data; nothing was loaded");
    }
    batch.append(scratch);
  };
  const size_t n = layout.schema.columns.size();
  // Values of the indexed columns, found in one pass over the object's keys.
  thread_local std::vector<const Json*> found;
  auto scan = [&](const Json& object) {
    found.assign(n, nullptr);
    if (!object.is_object()) return;
    for (const auto& [key, value] : object.items()) {
      auto it = layout.by_key.find(key);
      if (it == layout.by_key.end()) continue;
      for (size_t c : it->second) found[c] = value_at(value, layout.sources[c].path, 1);
    }
  };
  const bool indexed = !layout.by_key.empty();
  auto field = [&](const Json& object, size_t c) {
    return indexed ? found[c] : value_at(object, layout.sources[c].path);
  };
  if (layout.list_path.empty()) {
    if (indexed) scan(record);
    for (size_t c = 0; c < n; ++c) {
      const ColumnSource& s = layout.sources[c];
      const Json* v = field(record, c);
      if (s.kind == ColumnSource::Kind::ListLength) {
        if (v == nullptr || !v->is_array()) {
          batch.append_null();
        } else {
          Json count = static_cast<int64_t>(v->size());
          put(c, &count);
        }
      } else {
        put(c, v);
      }
    }
    return 1;
  }
  const Json* list = value_at(record, layout.list_path);
  if (list == nullptr || !list->is_array()) return 0;
  int64_t index = 0;
  for (const auto& element : *list) {
    if (indexed) scan(element);
    for (size_t c = 0; c < n; ++c) {
      const ColumnSource& s = layout.sources[c];
      switch (s.kind) {
        case ColumnSource::Kind::ParentKey:
          put(c, value_at(record, s.path));
          break;
        case ColumnSource::Kind::Index: {
          Json i = index;
          put(c, &i);
          break;
        }
        case ColumnSource::Kind::ElementValue:
          put(c, element.is_object() ? nullptr : &element);
          break;
        default:
          put(c, element.is_object() ? field(element, c) : nullptr);
          break;
      }
    }
    ++index;
  }
  return static_cast<size_t>(index);
}

void index_layout(Layout& layout) {
  layout.by_key.clear();
  for (size_t c = 0; c < layout.sources.size(); ++c) {
    const ColumnSource& s = layout.sources[c];
    bool element_level = !layout.list_path.empty();
    bool indexable = element_level ? s.kind == ColumnSource::Kind::Field
                                   : (s.kind == ColumnSource::Kind::Field ||
                                      s.kind == ColumnSource::Kind::ListLength);
    if (indexable && !s.path.empty()) layout.by_key[s.path.front()].push_back(c);
  }
}

bool cursor_less(const Json& a, const Json& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_number_integer() && b.is_number_integer()) return a.get<int64_t>() < b.get<int64_t>();
    return a.get<double>() < b.get<double>();
  }
  auto text = [](const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  return text(a) < text(b);
}

std::string cursor_text(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  return value.dump();
}

}  // namespace dpone::rest
