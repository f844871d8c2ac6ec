// Schema comparison: source schema vs the sink's target (SPEC "Schema evolution").
// The comparator lists every difference and classifies it; the policy decides which
// are applied. Sinks turn the applied changes into dialect DDL (Sink::render_ddl).
#pragma once

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

struct SchemaChange {
  ChangeKind kind;
  std::string column;                 // empty for CreateTable
  std::optional<Column> from;         // target side
  std::optional<Column> to;           // source side
  std::string detail;                 // e.g. "int32 -> int64"
  bool safe = false;                  // allowed under the policy in force
  std::string to_string() const;      // "add column email (string, nullable)"
};

struct SchemaDiff {
  std::vector<SchemaChange> changes;
  bool has_unsafe() const;
  std::vector<const SchemaChange*> unsafe() const;
  std::vector<const SchemaChange*> to_apply() const;  // safe ones, in order
  nlohmann::json to_json() const;
};

std::string to_string(ChangeKind kind);
std::optional<EvolutionPolicy> parse_policy(const std::string& text);
std::string to_string(EvolutionPolicy policy);

// Is `to` a safe widening of `from`?
bool is_widening(const LogicalType& from, const LogicalType& to);

// Compares the source schema with the target's (nullopt = no target yet).
SchemaDiff compare_schemas(const Schema& source, const std::optional<Schema>& target,
                           EvolutionPolicy policy);

}  // namespace dpone
