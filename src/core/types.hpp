// The logical type system every connector maps to and from (SPEC "Type mapping").
// A value inside a RecordBatch is held in its canonical text form for its type
// (see docs/architecture.md, "Values"); connectors convert at their edges.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dpone {

enum class TypeId {
  Bool,
  Int16,
  Int32,
  Int64,
  Float32,
  Float64,
  Decimal,    // precision, scale
  String,     // length: 0 = unbounded, else varchar(length)
  Bytes,
  Date,
  Time,
  Timestamp,  // precision (fractional digits, 0-6), tz
  Json,
  Uuid,
};

struct LogicalType {
  TypeId id = TypeId::String;
  int precision = 0;  // decimal precision, or timestamp fractional digits
  int scale = 0;      // decimal scale
  int length = 0;     // varchar length; 0 = unbounded
  bool tz = false;    // timestamp with time zone

  static LogicalType of(TypeId id) { return LogicalType{id}; }
  static LogicalType decimal(int p, int s) { return LogicalType{TypeId::Decimal, p, s}; }
  static LogicalType varchar(int n) { return LogicalType{TypeId::String, 0, 0, n}; }
  static LogicalType timestamp(int precision, bool tz) {
    return LogicalType{TypeId::Timestamp, precision, 0, 0, tz};
  }

  // Canonical spelling used in manifests, plans and run records:
  // bool, int16, int32, int64, float32, float64, decimal(p,s), string, varchar(n),
  // bytes, date, time, timestamp, timestamp(p), timestamptz, timestamptz(p), json, uuid.
  std::string to_string() const;
  // Parses the canonical spelling (and a few aliases: int, bigint, text, double,
  // boolean, numeric(p,s)). Returns nullopt for anything else.
  static std::optional<LogicalType> parse(std::string_view text);

  bool operator==(const LogicalType& o) const = default;
};

struct Column {
  std::string name;
  LogicalType type;
  bool nullable = true;
  bool operator==(const Column& o) const = default;
};

struct Schema {
  std::vector<Column> columns;
  std::vector<std::string> primary_key;  // may be empty

  // Index of the column with this name, or -1.
  int find(std::string_view name) const;
  std::vector<std::string> names() const;
  bool operator==(const Schema& o) const = default;
};

}  // namespace dpone
