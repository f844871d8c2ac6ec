// Value canonicalization: the one place that decides whether a piece of text is a valid
// value of a logical type, and what its canonical cell text is (docs/architecture.md,
// "Values"; the forms are listed in core/types.hpp's header comment).
//
// Contract:
//   - canonicalize() never rounds, truncates or guesses a time zone. A value that does not
//     fit its type fails with TypeOverflow; text that is not a value of the type fails with
//     TypeMismatch. The reason names the value (shortened) and the type.
//   - Surrounding blanks (spaces, tabs) are ignored for every type except string, varchar,
//     bytes and json, whose text is kept byte for byte.
//   - string/varchar must be valid UTF-8; varchar(n) counts code points, not bytes.
//   - Hot path: runs once per cell. On success it performs no allocation beyond growing
//     `out` (callers reuse one `out` string); messages are only built on failure.
// Thread safety: all functions are pure and reentrant.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/errors.hpp"
#include "core/types.hpp"

namespace dpone {

struct ValueError {
  ErrorCode code;      // TypeMismatch or TypeOverflow
  std::string reason;  // e.g. "value 70000 does not fit int16", "'abc' is not a valid int64"
};

// Validates `text` as a value of `type` and writes its canonical form into `out` (out is
// overwritten; its content is unspecified on failure). Returns nullopt on success.
std::optional<ValueError> canonicalize(const LogicalType& type, std::string_view text,
                                       std::string& out);

// Same validation and output as canonicalize() without building a message: for loops that
// only need a yes/no (type inference).
bool is_valid_value(const LogicalType& type, std::string_view text, std::string& out);

// `text` as it appears in error messages: single-quoted, cut after 60 bytes (at a UTF-8
// boundary) and with control characters escaped, so a bad cell cannot flood a log line.
std::string quote_value(std::string_view text);

}  // namespace dpone
