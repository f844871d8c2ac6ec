// Stable error codes. Every failure dpone reports carries one of these names,
// a category (which fixes the CLI exit code) and whether a retry can help.
// The list is the single source of truth: docs/errors.md is written from it.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace dpone {

// Exit codes of the CLI: 0 ok, 1 run failed, 2 invalid configuration, 3 dependency unavailable.
enum class ErrorCategory { Run = 1, Config = 2, Dependency = 3 };

#define DPONE_ERROR_CODES(X)                                                              \
  X(ConfigInvalid, "CONFIG_INVALID", Config, false)                                       \
  X(ConfigUnknownKey, "CONFIG_UNKNOWN_KEY", Config, false)                                \
  X(ConfigWrongType, "CONFIG_WRONG_TYPE", Config, false)                                  \
  X(ConfigMissingKey, "CONFIG_MISSING_KEY", Config, false)                                \
  X(ConfigBadValue, "CONFIG_BAD_VALUE", Config, false)                                    \
  X(ConfigYamlSyntax, "CONFIG_YAML_SYNTAX", Config, false)                                \
  X(ConfigTemplate, "CONFIG_TEMPLATE", Config, false)                                     \
  X(ConnectionMissing, "CONNECTION_MISSING", Config, false)                               \
  X(SecretUnresolved, "SECRET_UNRESOLVED", Config, false)                                 \
  X(SelectNoMatch, "SELECT_NO_MATCH", Config, false)                                      \
  X(ModuleMissing, "MODULE_MISSING", Dependency, false)                                   \
  X(ModuleLoadFailed, "MODULE_LOAD_FAILED", Dependency, false)                            \
  X(ConnectorUnknown, "CONNECTOR_UNKNOWN", Config, false)                                 \
  X(SourceUnavailable, "SOURCE_UNAVAILABLE", Dependency, true)                            \
  X(SinkUnavailable, "SINK_UNAVAILABLE", Dependency, true)                                \
  X(SourceReadFailed, "SOURCE_READ_FAILED", Run, true)                                    \
  X(InputMalformed, "INPUT_MALFORMED", Run, false)                                        \
  X(TypeMismatch, "TYPE_MISMATCH", Run, false)                                            \
  X(TypeOverflow, "TYPE_OVERFLOW", Run, false)                                            \
  X(SchemaUnsafeChange, "SCHEMA_UNSAFE_CHANGE", Run, false)                               \
  X(StageFailed, "STAGE_FAILED", Run, true)                                               \
  X(KeyNull, "KEY_NULL", Run, false)                                                      \
  X(KeyDuplicate, "KEY_DUPLICATE", Run, false)                                            \
  X(GateFailed, "GATE_FAILED", Run, false)                                                \
  X(ShrinkRefused, "SHRINK_REFUSED", Run, false)                                          \
  X(PromoteFailed, "PROMOTE_FAILED", Run, true)                                           \
  X(StateConflict, "STATE_CONFLICT", Run, true)                                           \
  X(StateStoreFailed, "STATE_STORE_FAILED", Run, true)                                    \
  X(StreamBusy, "STREAM_BUSY", Run, true)                                                 \
  X(TimedOut, "TIMED_OUT", Dependency, true)                                              \
  X(DiskFull, "DISK_FULL", Run, true)                                                     \
  X(Interrupted, "INTERRUPTED", Run, true)                                                \
  X(RunRecordMissing, "RUN_RECORD_MISSING", Config, false)                                \
  X(FailpointTriggered, "FAILPOINT_TRIGGERED", Run, false)                                \
  X(Internal, "INTERNAL", Run, false)

enum class ErrorCode {
#define DPONE_X(id, name, cat, retry) id,
  DPONE_ERROR_CODES(DPONE_X)
#undef DPONE_X
};

std::string_view error_code_name(ErrorCode code);
ErrorCategory error_category(ErrorCode code);
bool error_retryable(ErrorCode code);
int exit_code_for(ErrorCode code);

// The one exception type dpone throws for expected failures. `what()` is the
// operator-facing message (already redacted by whoever prints it); `hint()`
// says what to do about it.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message, std::string hint = {})
      : std::runtime_error(std::move(message)), code_(code), hint_(std::move(hint)) {}
  ErrorCode code() const { return code_; }
  std::string_view code_name() const { return error_code_name(code_); }
  const std::string& hint() const { return hint_; }
  bool retryable() const { return error_retryable(code_); }

 private:
  ErrorCode code_;
  std::string hint_;
};

}  // namespace dpone
