#include "core/evolution/schema_diff.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace dpone {

namespace {

int int_rank(TypeId id) {
  switch (id) {
    case TypeId::Int16: return 1;
    case TypeId::Int32: return 2;
    case TypeId::Int64: return 3;
    default: return 0;
  }
}

std::string describe(const Column& c) {
  return c.type.to_string() + (c.nullable ? ", nullable" : ", not null");
}

}  // namespace

bool is_widening(const LogicalType& from, const LogicalType& to) {
  if (from == to) return false;
  int fr = int_rank(from.id), tr = int_rank(to.id);
  if (fr && tr) return tr > fr;
  if (from.id == TypeId::Float32 && to.id == TypeId::Float64) return true;
  if (from.id == TypeId::String && to.id == TypeId::String)
    return from.length > 0 && (to.length == 0 || to.length > from.length);
  if (from.id == TypeId::Decimal && to.id == TypeId::Decimal)
    return to.scale == from.scale && to.precision > from.precision;
  if (from.id == TypeId::Timestamp && to.id == TypeId::Timestamp)
    return from.tz == to.tz && to.precision > from.precision;
  return false;
}

std::string to_string(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::CreateTable: return "create_table";
    case ChangeKind::AddColumn: return "add_column";
    case ChangeKind::WidenType: return "widen_type";
    case ChangeKind::DropColumn: return "drop_column";
    case ChangeKind::NarrowType: return "narrow_type";
    case ChangeKind::ChangeType: return "change_type";
    case ChangeKind::MakeNotNull: return "make_not_null";
    case ChangeKind::MakeNullable: return "make_nullable";
    case ChangeKind::PossibleRename: return "possible_rename";
  }
  return "unknown";
}

std::optional<EvolutionPolicy> parse_policy(const std::string& text) {
  if (text == "strict") return EvolutionPolicy::Strict;
  if (text == "additive") return EvolutionPolicy::Additive;
  if (text == "widening") return EvolutionPolicy::Widening;
  return std::nullopt;
}

std::optional<OnTypeChange> parse_on_type_change(const std::string& text) {
  if (text == "fail") return OnTypeChange::Fail;
  if (text == "new_column") return OnTypeChange::NewColumn;
  return std::nullopt;
}

std::string to_string(OnTypeChange mode) {
  return mode == OnTypeChange::NewColumn ? "new_column" : "fail";
}

std::string to_string(EvolutionPolicy policy) {
  switch (policy) {
    case EvolutionPolicy::Strict: return "strict";
    case EvolutionPolicy::Additive: return "additive";
    case EvolutionPolicy::Widening: return "widening";
  }
  return "widening";
}

std::string SchemaChange::to_string() const {
  switch (kind) {
    case ChangeKind::CreateTable: return "create table (target does not exist)";
    case ChangeKind::AddColumn:
      return "add column " + column + " (" + describe(*to) + ")" +
             (routed_from.empty() ? "" : " for the values of " + routed_from + " (on_type_change: new_column)");
    case ChangeKind::DropColumn:
      return "column " + column + " (" + describe(*from) + ") is in the target but not at the source";
    case ChangeKind::PossibleRename: return "possible rename: " + detail;
    default: return dpone::to_string(kind) + " of column " + column + ": " + detail;
  }
}

bool SchemaDiff::has_unsafe() const {
  return std::any_of(changes.begin(), changes.end(), [](const auto& c) { return !c.safe; });
}

std::vector<const SchemaChange*> SchemaDiff::unsafe() const {
  std::vector<const SchemaChange*> out;
  for (const auto& c : changes)
    if (!c.safe) out.push_back(&c);
  return out;
}

std::vector<const SchemaChange*> SchemaDiff::to_apply() const {
  std::vector<const SchemaChange*> out;
  for (const auto& c : changes)
    if (c.safe) out.push_back(&c);
  return out;
}

nlohmann::json SchemaDiff::routes_json() const {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& r : routes)
    arr.push_back({{"column", r.column}, {"to", r.target}, {"detail", r.detail}});
  return arr;
}

Schema SchemaDiff::route(const Schema& source) const {
  Schema out = source;
  for (const auto& r : routes) {
    int i = out.find(r.column);
    if (i < 0) continue;
    out.columns[static_cast<size_t>(i)].name = r.target;
    out.columns[static_cast<size_t>(i)].nullable = true;
  }
  return out;
}

nlohmann::json SchemaDiff::to_json() const {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& c : changes) {
    nlohmann::json j{{"kind", dpone::to_string(c.kind)}, {"column", c.column},
                     {"detail", c.detail}, {"safe", c.safe}, {"text", c.to_string()}};
    if (c.from) j["from"] = describe(*c.from);
    if (c.to) j["to"] = describe(*c.to);
    if (!c.routed_from.empty()) j["routed_from"] = c.routed_from;
    arr.push_back(j);
  }
  return arr;
}

SchemaDiff compare_schemas(const Schema& source, const std::optional<Schema>& target,
                           EvolutionPolicy policy, OnTypeChange on_type_change) {
  SchemaDiff diff;
  if (!target) {
    diff.changes.push_back({ChangeKind::CreateTable, "", std::nullopt, std::nullopt, "", true, ""});
    return diff;
  }
  // The source as it will be loaded: with on_type_change: new_column, a column whose type
  // changed incompatibly is loaded into __dpone__nc__<col> and the target column <col> is
  // kept (new rows leave it NULL, so it must be nullable).
  Schema effective = source;
  std::vector<std::string> kept;  // target columns kept although the source lost them
  if (on_type_change == OnTypeChange::NewColumn) {
    for (auto& s : effective.columns) {
      int ti = target->find(s.name);
      if (ti < 0) continue;
      const Column& t = target->columns[static_cast<size_t>(ti)];
      if (s.type == t.type || is_widening(t.type, s.type) || is_widening(s.type, t.type)) continue;
      if (!t.nullable) continue;  // reported below as an unsafe change_type
      std::string routed = std::string(kNewColumnPrefix) + s.name;
      if (source.find(routed) >= 0) continue;  // the name is taken at the source: fail instead
      diff.routes.push_back({s.name, routed, t.type.to_string() + " -> " + s.type.to_string()});
      kept.push_back(s.name);
      s.name = routed;
      s.nullable = true;
    }
  }
  auto route_of = [&](const std::string& name) -> const ColumnRoute* {
    for (const auto& r : diff.routes)
      if (r.target == name) return &r;
    return nullptr;
  };
  auto is_kept = [&](const std::string& name) {
    return std::find(kept.begin(), kept.end(), name) != kept.end();
  };

  // Columns in the target but not the source, and new ones at the source, in order.
  std::vector<const Column*> dropped, added;
  for (const auto& t : target->columns)
    if (effective.find(t.name) < 0 && !is_kept(t.name)) dropped.push_back(&t);
  for (const auto& s : effective.columns)
    if (target->find(s.name) < 0) added.push_back(&s);

  for (const auto& s : effective.columns) {
    int ti = target->find(s.name);
    if (ti < 0) continue;
    const Column& t = target->columns[static_cast<size_t>(ti)];
    if (!(s.type == t.type)) {
      SchemaChange c{ChangeKind::ChangeType, s.name, t, s, t.type.to_string() + " -> " + s.type.to_string(), false, ""};
      if (is_widening(t.type, s.type)) {
        c.kind = ChangeKind::WidenType;
        c.safe = policy == EvolutionPolicy::Widening;
      } else if (is_widening(s.type, t.type)) {
        // SPEC: narrowing is unsafe whatever the policy; the operator decides.
        c.kind = ChangeKind::NarrowType;
      } else if (on_type_change == OnTypeChange::NewColumn) {
        c.detail += !t.nullable ? "; on_type_change: new_column cannot route it: the target column is NOT NULL"
                                : "; on_type_change: new_column cannot route it: the source already has a column " +
                                      std::string(kNewColumnPrefix) + s.name;
      }
      if (const ColumnRoute* r = route_of(s.name)) c.detail += " (values of " + r->column + ")";
      diff.changes.push_back(c);
    }
    if (s.nullable && !t.nullable) {
      diff.changes.push_back({ChangeKind::MakeNullable, s.name, t, s,
                              "source allows NULL, target column is NOT NULL", false, ""});
    } else if (!s.nullable && t.nullable) {
      // SPEC lists nullable -> not null among the unsafe changes.
      diff.changes.push_back({ChangeKind::MakeNotNull, s.name, t, s,
                              "source is NOT NULL, target allows NULL", false, ""});
    }
  }
  // A dropped and an added column at the same position with the same type look like
  // a rename: report it as one change so the operator sees the likely cause.
  std::vector<bool> add_used(added.size(), false);
  for (const Column* d : dropped) {
    int dpos = target->find(d->name);
    bool renamed = false;
    for (size_t i = 0; i < added.size(); ++i) {
      if (add_used[i] || !(added[i]->type == d->type) || route_of(added[i]->name)) continue;
      if (effective.find(added[i]->name) == dpos) {
        diff.changes.push_back({ChangeKind::PossibleRename, added[i]->name, *d, *added[i],
                                d->name + " -> " + added[i]->name, false, ""});
        add_used[i] = renamed = true;
        break;
      }
    }
    if (!renamed)
      diff.changes.push_back({ChangeKind::DropColumn, d->name, *d, std::nullopt, "", false, ""});
  }
  for (size_t i = 0; i < added.size(); ++i) {
    if (add_used[i]) continue;
    const Column& a = *added[i];
    SchemaChange c{ChangeKind::AddColumn, a.name, std::nullopt, a, a.type.to_string(), false, ""};
    if (const ColumnRoute* r = route_of(a.name)) {
      c.routed_from = r->column;
      c.detail += "; values of " + r->column + " (" + r->detail + "), on_type_change: new_column";
    }
    if (!a.nullable) {
      c.detail += " NOT NULL: existing rows would have no value";
    } else {
      c.safe = policy != EvolutionPolicy::Strict;
    }
    diff.changes.push_back(c);
  }
  return diff;
}

namespace {

std::string quote_part(const std::string& part) {
  std::string out = "\"";
  for (char ch : part) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

// "schema.table" -> "schema"."table" (the first dot separates the schema).
std::string quoted_target(const std::string& name) {
  const auto dot = name.find('.');
  if (dot == std::string::npos) return quote_part(name);
  return quote_part(name.substr(0, dot)) + "." + quote_part(name.substr(dot + 1));
}

// The sink's DDL for `change`, or nothing when the sink cannot render it.
std::vector<std::string> rendered(const DdlRenderer& render, const SchemaChange& change) {
  if (!render) return {};
  try {
    return render(change);
  } catch (const std::exception&) {
    return {};  // the dialect has no in-place DDL for it: the alternative says what to do
  }
}

// A change of the target column to the source's type (a widening for the sink's renderer).
SchemaChange retype(const SchemaChange& c) {
  SchemaChange w = c;
  w.kind = ChangeKind::WidenType;
  w.safe = true;
  return w;
}

}  // namespace

Resolution resolve_unsafe(const SchemaChange& c, const std::string& target_name,
                          EvolutionPolicy policy, OnTypeChange on_type_change,
                          const DdlRenderer& render) {
  Resolution r;
  const std::string t = quoted_target(target_name);
  const std::string col = quote_part(c.column);
  const std::string rebuild =
      "this target cannot change a column's type or constraints in place: rebuild the table "
      "(rename or drop it; the next run creates it from the source)";
  switch (c.kind) {
    case ChangeKind::AddColumn: {
      SchemaChange add = c;
      add.safe = true;
      if (add.to) add.to->nullable = true;
      r.ddl = rendered(render, add);
      if (r.ddl.empty() && c.to)
        r.ddl.push_back(
            fmt::format("ALTER TABLE {} ADD COLUMN {} {}", t, col, c.to->type.to_string()));
      if (c.to && !c.to->nullable)
        r.alternative =
            "the column is added nullable (existing rows have no value); fill it, or "
            "make the source column nullable";
      else if (policy == EvolutionPolicy::Strict)
        r.alternative =
            "set schema_evolution.policy: additive (new nullable columns are added "
            "automatically)";
      break;
    }
    case ChangeKind::WidenType:
      r.ddl = rendered(render, retype(c));
      r.alternative =
          "set schema_evolution.policy: widening (safe widenings are applied "
          "automatically)";
      break;
    case ChangeKind::NarrowType:
      r.ddl = rendered(render, retype(c));
      r.alternative = fmt::format(
          "the DDL narrows the target column to the source's {} (it fails if a stored value does "
          "not fit); or make the source produce {} again",
          c.to ? c.to->type.to_string() : "type",
          c.from ? c.from->type.to_string() : "the old type");
      if (r.ddl.empty())
        r.alternative = rebuild + "; or make the source produce " +
                        (c.from ? c.from->type.to_string() : "the old type") + " again";
      break;
    case ChangeKind::ChangeType:
      r.ddl = rendered(render, retype(c));
      r.alternative = on_type_change == OnTypeChange::Fail
                          ? fmt::format(
                                "set schema_evolution.on_type_change: new_column to keep {} "
                                "and load the new values into {}{}",
                                c.column, kNewColumnPrefix, c.column)
                          : std::string();
      if (r.ddl.empty())
        r.alternative = rebuild + (r.alternative.empty() ? "" : "; or " + r.alternative);
      else
        r.alternative =
            "the DDL changes the column's type; stored values must convert (PostgreSQL "
            "may need USING <expression>)" +
            (r.alternative.empty() ? std::string() : "; or " + r.alternative);
      break;
    case ChangeKind::MakeNullable:
      r.ddl = rendered(render, c);
      if (r.ddl.empty()) r.alternative = rebuild;
      break;
    case ChangeKind::MakeNotNull: {
      // The sink renders DROP NOT NULL where it can alter constraints in place.
      SchemaChange probe = c;
      probe.kind = ChangeKind::MakeNullable;
      if (!rendered(render, probe).empty() || !render)
        r.ddl.push_back(fmt::format("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL", t, col));
      r.alternative = r.ddl.empty() ? rebuild + "; or declare the source column nullable"
                                    : "alternatively, declare the source column nullable";
      break;
    }
    case ChangeKind::DropColumn:
      r.ddl.push_back(fmt::format("ALTER TABLE {} DROP COLUMN {}", t, col));
      r.alternative =
          "the DDL deletes the column and its values; or add the column back at the "
          "source";
      break;
    case ChangeKind::PossibleRename:
      if (c.from && c.to)
        r.ddl.push_back(fmt::format("ALTER TABLE {} RENAME COLUMN {} TO {}", t,
                                    quote_part(c.from->name), quote_part(c.to->name)));
      r.alternative = "if it is not a rename, drop the old column instead";
      break;
    case ChangeKind::CreateTable:
      break;
  }
  return r;
}

nlohmann::json unsafe_resolutions_json(const SchemaDiff& diff, EvolutionPolicy policy,
                                       OnTypeChange on_type_change, const std::string& target_name,
                                       const DdlRenderer& render) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto* c : diff.unsafe()) {
    Resolution r = resolve_unsafe(*c, target_name, policy, on_type_change, render);
    out.push_back({{"change", c->to_string()}, {"ddl", r.ddl}, {"alternative", r.alternative}});
  }
  return out;
}

std::string unsafe_changes_message(const std::string& stream, const SchemaDiff& diff,
                                   EvolutionPolicy policy, OnTypeChange on_type_change,
                                   const std::string& target_name, const DdlRenderer& render) {
  std::string msg =
      "stream " + stream + ": schema change not allowed under policy '" + to_string(policy) + "':";
  for (const auto* c : diff.unsafe()) {
    msg += "\n  - " + c->to_string();
    Resolution r = resolve_unsafe(*c, target_name, policy, on_type_change, render);
    for (size_t i = 0; i < r.ddl.size(); ++i)
      msg += (i == 0 ? "\n    resolve with: " : "\n                  ") + r.ddl[i];
    if (!r.alternative.empty())
      msg += (r.ddl.empty() ? "\n    resolve: " : "\n    note: ") + r.alternative;
  }
  return msg;
}

}  // namespace dpone
