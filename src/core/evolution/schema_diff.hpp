// Schema comparison: source schema vs the sink's target (SPEC "Schema evolution").
// The comparator lists every difference and classifies it; the policy decides which
// are applied. Sinks turn the applied changes into dialect DDL (Sink::render_ddl).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/types.hpp"

namespace dpone {

enum class ChangeKind {
  CreateTable,      // target missing: create it from the source schema
  AddColumn,        // new column at the source
  WidenType,        // int16->int32->int64, float32->float64, varchar(n)->varchar(m>n), ...
  DropColumn,       // column in target, gone at the source
  NarrowType,       // the reverse of widening
  ChangeType,       // incompatible type change
  MakeNotNull,      // nullable in target, NOT NULL at source: harmless for loading
  MakeNullable,     // NOT NULL in target, nullable at source: loading NULLs would fail
  PossibleRename,   // a dropped and an added column of the same type at the same position
};

enum class EvolutionPolicy { Strict, Additive, Widening };

// What an incompatible type change does (schema_evolution.on_type_change): fail, or keep
// the target column and route the source's values to a new column `__dpone__nc__<col>`.
enum class OnTypeChange { Fail, NewColumn };

// Prefix of the columns that receive the values of a column whose type changed.
inline constexpr const char* kNewColumnPrefix = "__dpone__nc__";

struct SchemaChange {
  ChangeKind kind;
  std::string column;                 // empty for CreateTable
  std::optional<Column> from;         // target side
  std::optional<Column> to;           // source side
  std::string detail;                 // e.g. "int32 -> int64"
  bool safe = false;                  // allowed under the policy in force
  std::string routed_from;            // AddColumn of __dpone__nc__<col>: the source column <col>
  std::string to_string() const;      // "add column email (string, nullable)"
};

// A source column whose values go to another target column (on_type_change: new_column).
struct ColumnRoute {
  std::string column;  // source column name (the target keeps its old type under this name)
  std::string target;  // __dpone__nc__<column>
  std::string detail;  // "int32 -> string"
};

struct SchemaDiff {
  std::vector<SchemaChange> changes;
  bool has_unsafe() const;
  std::vector<const SchemaChange*> unsafe() const;
  std::vector<ColumnRoute> routes;  // on_type_change: new_column, in source column order
  std::vector<const SchemaChange*> to_apply() const;  // safe ones, in order
  nlohmann::json to_json() const;
  nlohmann::json routes_json() const;
  // The source schema as loaded: routed columns renamed to their __dpone__nc__ column
  // (nullable: the target keeps rows without a value there). Identity without routes.
  Schema route(const Schema& source) const;
};

std::string to_string(ChangeKind kind);
std::optional<EvolutionPolicy> parse_policy(const std::string& text);
std::string to_string(EvolutionPolicy policy);
std::optional<OnTypeChange> parse_on_type_change(const std::string& text);
std::string to_string(OnTypeChange mode);

// Is `to` a safe widening of `from`?
bool is_widening(const LogicalType& from, const LogicalType& to);

// Compares the source schema with the target's (nullopt = no target yet). With
// OnTypeChange::NewColumn an incompatible type change (not a widening nor a narrowing) of a
// nullable target column becomes a route plus, when the target lacks it, an AddColumn of
// `__dpone__nc__<col>` (safe unless the policy is strict); the routed column's new type is
// then compared with that column's, so a later widening or change is still reported.
SchemaDiff compare_schemas(const Schema& source, const std::optional<Schema>& target,
                           EvolutionPolicy policy, OnTypeChange on_type_change = OnTypeChange::Fail);

// What an operator can do about an unsafe change (SPEC: unsafe changes fail "with the exact
// change and the DDL that would resolve it"). `ddl` makes the target accept the source as
// it is now (in the sink's dialect where the sink renders it, else portable SQL with
// double-quoted identifiers); `alternative` is the manifest change that would allow it, or
// what the DDL costs. Either may be empty, never both.
struct Resolution {
  std::vector<std::string> ddl;
  std::string alternative;
};

// The sink's DDL for one change (Sink::render_ddl); throws Error when the sink cannot render it.
using DdlRenderer = std::function<std::vector<std::string>(const SchemaChange&)>;

// `target_name` as the sinks name it ("schema.table"); quoted "schema"."table" in the DDL.
Resolution resolve_unsafe(const SchemaChange& change, const std::string& target_name,
                          EvolutionPolicy policy, OnTypeChange on_type_change,
                          const DdlRenderer& render);

// The SCHEMA_UNSAFE_CHANGE message: every unsafe change, each followed by its resolution
// ("    resolve with: <DDL>" lines, then "    or: <alternative>").
std::string unsafe_changes_message(const std::string& stream, const SchemaDiff& diff,
                                   EvolutionPolicy policy, OnTypeChange on_type_change,
                                   const std::string& target_name, const DdlRenderer& render);

// The resolutions of the unsafe changes, for run records and plans:
// [{"change": text, "ddl": [...], "alternative": text}].
nlohmann::json unsafe_resolutions_json(const SchemaDiff& diff, EvolutionPolicy policy,
                                       OnTypeChange on_type_change,
                                       const std::string& target_name, const DdlRenderer& render);

}  // namespace dpone
