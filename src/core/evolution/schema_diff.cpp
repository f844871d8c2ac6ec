#include "core/evolution/schema_diff.hpp"

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
    case ChangeKind::AddColumn: return "add column " + column + " (" + describe(*to) + ")";
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

nlohmann::json SchemaDiff::to_json() const {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& c : changes) {
    nlohmann::json j{{"kind", dpone::to_string(c.kind)}, {"column", c.column},
                     {"detail", c.detail}, {"safe", c.safe}, {"text", c.to_string()}};
    if (c.from) j["from"] = describe(*c.from);
    if (c.to) j["to"] = describe(*c.to);
    arr.push_back(j);
  }
  return arr;
}

SchemaDiff compare_schemas(const Schema& source, const std::optional<Schema>& target,
                           EvolutionPolicy policy) {
  SchemaDiff diff;
  if (!target) {
    diff.changes.push_back({ChangeKind::CreateTable, "", std::nullopt, std::nullopt, "", true});
    return diff;
  }
  // Columns in the target but not the source, and new ones at the source, in order.
  std::vector<const Column*> dropped, added;
  for (const auto& t : target->columns)
    if (source.find(t.name) < 0) dropped.push_back(&t);
  for (const auto& s : source.columns)
    if (target->find(s.name) < 0) added.push_back(&s);

  for (const auto& s : source.columns) {
    int ti = target->find(s.name);
    if (ti < 0) continue;
    const Column& t = target->columns[ti];
    if (!(s.type == t.type)) {
      SchemaChange c{ChangeKind::ChangeType, s.name, t, s, t.type.to_string() + " -> " + s.type.to_string(), false};
      if (is_widening(t.type, s.type)) {
        c.kind = ChangeKind::WidenType;
        c.safe = policy == EvolutionPolicy::Widening;
      } else if (is_widening(s.type, t.type)) {
        // SPEC: narrowing is unsafe whatever the policy; the operator decides.
        c.kind = ChangeKind::NarrowType;
      }
      diff.changes.push_back(c);
    }
    if (s.nullable && !t.nullable) {
      diff.changes.push_back({ChangeKind::MakeNullable, s.name, t, s,
                              "source allows NULL, target column is NOT NULL", false});
    } else if (!s.nullable && t.nullable) {
      // SPEC lists nullable -> not null among the unsafe changes.
      diff.changes.push_back({ChangeKind::MakeNotNull, s.name, t, s,
                              "source is NOT NULL, target allows NULL", false});
    }
  }
  // A dropped and an added column at the same position with the same type look like
  // a rename: report it as one change so the operator sees the likely cause.
  std::vector<bool> add_used(added.size(), false);
  for (const Column* d : dropped) {
    int dpos = target->find(d->name);
    bool renamed = false;
    for (size_t i = 0; i < added.size(); ++i) {
      if (add_used[i] || !(added[i]->type == d->type)) continue;
      if (source.find(added[i]->name) == dpos) {
        diff.changes.push_back({ChangeKind::PossibleRename, added[i]->name, *d, *added[i],
                                d->name + " -> " + added[i]->name, false});
        add_used[i] = renamed = true;
        break;
      }
    }
    if (!renamed)
      diff.changes.push_back({ChangeKind::DropColumn, d->name, *d, std::nullopt, "", false});
  }
  for (size_t i = 0; i < added.size(); ++i) {
    if (add_used[i]) continue;
    const Column& a = *added[i];
    SchemaChange c{ChangeKind::AddColumn, a.name, std::nullopt, a, a.type.to_string(), false};
    if (!a.nullable) {
      c.detail += " NOT NULL: existing rows would have no value";
    } else {
      c.safe = policy != EvolutionPolicy::Strict;
    }
    diff.changes.push_back(c);
  }
  return diff;
}

}  // namespace dpone
