// The SQLite type map (README.md "Types"), both directions, and the conversion of cell
// values between canonical text (core/record_batch.hpp) and SQLite values.
//
// Writing, dpone declares these column types (chosen for the affinity SQLite derives
// from the name, so no value is rewritten on the way in):
//   bool BOOLEAN, int16 SMALLINT, int32 INTEGER, int64 BIGINT, float32 FLOAT,
//   float64 DOUBLE, decimal(p,s) DECIMAL_TEXT(p,s), string TEXT, varchar(n) VARCHAR(n),
//   bytes BLOB, date DATE, time TIME, timestamp TIMESTAMP[(p)], timestamptz
//   TIMESTAMPTZ[(p)], json JSON_TEXT, uuid UUID.
// decimal and json carry "TEXT" in their name: with the NUMERIC affinity a plain
// DECIMAL or JSON column gets, SQLite turns the text 12.50 into the REAL 12.5 and a
// 23-digit JSON number into a rounded REAL.
//
// Reading, our spellings map back exactly; other declared types map by SQLite's
// affinity rules (INTEGER -> int64, REAL -> float64, TEXT -> string, BLOB -> bytes) and
// a few common names (BOOL, DATETIME, DECIMAL(p,s), NUMERIC(p,s), JSON, REAL, ...).
// A source reads a plain INTEGER column as int64 (SQLite integers are 64-bit whatever
// the declaration says); a sink comparing its target reads INTEGER as int32, the type
// dpone created it from, so a table dpone made compares equal to its source.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/record_batch.hpp"
#include "core/state/sqlite_handle.hpp"
#include "core/types.hpp"

namespace dpone::sqlite {

// Declared column type dpone writes for `type`.
std::string declared_type(const LogicalType& type);

enum class TypeSide { Source, Target };

struct DeclaredType {
  LogicalType type;
  bool known = true;  // false: a fallback the caller should warn about
};

// Maps a declared column type (as PRAGMA table_info or sqlite3_column_decltype give it).
DeclaredType logical_type_of(std::string_view declared, TypeSide side);

// Binds the canonical text `cell` of a value of `type` as parameter `index`.
// Throws Error(TypeMismatch) when the text is not a valid value of the type.
void bind_cell(SqliteStmt& stmt, int index, const LogicalType& type, std::string_view cell);

// Appends to `batch` the canonical text of column `col` of the statement's current row,
// read as `type` (NULL appends a null cell). Throws Error(TypeMismatch / TypeOverflow)
// describing the value when it cannot be represented.
void append_cell(const SqliteStmt& stmt, int col, const LogicalType& type, RecordBatch& batch);

// Cursor positions keep the SQLite value's type: INTEGER -> JSON integer, REAL -> JSON
// number, TEXT -> JSON string, NULL -> null. A BLOB throws Error(ConfigBadValue).
nlohmann::json column_json(const SqliteStmt& stmt, int col);
void bind_json(SqliteStmt& stmt, int index, const nlohmann::json& value);
// How a position value is shown in plans: strings bare, numbers as JSON.
std::string json_display(const nlohmann::json& value);

// Canonical-text helpers, exposed for tests.
std::string format_double(double v);
std::string format_float(float v);
// Normalizes decimal text to exactly `scale` fractional digits; throws on bad text or
// on more integer digits than precision - scale allows.
std::string normalize_decimal(std::string_view text, int precision, int scale);
// "YYYY-MM-DD[ T]HH:MM[:SS[.f]][Z|+hh:mm]" -> canonical timestamp (UTC with Z when tz).
std::string normalize_timestamp(std::string_view text, bool tz);

}  // namespace dpone::sqlite
