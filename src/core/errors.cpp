#include "core/errors.hpp"

namespace dpone {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
#define DPONE_X(id, name, cat, retry) \
  case ErrorCode::id:                 \
    return name;
    DPONE_ERROR_CODES(DPONE_X)
#undef DPONE_X
  }
  return "INTERNAL";
}

ErrorCategory error_category(ErrorCode code) {
  switch (code) {
#define DPONE_X(id, name, cat, retry) \
  case ErrorCode::id:                 \
    return ErrorCategory::cat;
    DPONE_ERROR_CODES(DPONE_X)
#undef DPONE_X
  }
  return ErrorCategory::Run;
}

bool error_retryable(ErrorCode code) {
  switch (code) {
#define DPONE_X(id, name, cat, retry) \
  case ErrorCode::id:                 \
    return retry;
    DPONE_ERROR_CODES(DPONE_X)
#undef DPONE_X
  }
  return false;
}

int exit_code_for(ErrorCode code) { return static_cast<int>(error_category(code)); }

}  // namespace dpone
