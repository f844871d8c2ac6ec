// Keeps docs/errors.md in step with the code list: every code is documented with its
// exit code and retry flag.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "core/errors.hpp"

TEST(ErrorsDoc, EveryCodeIsDocumentedWithItsExitCodeAndRetryFlag) {
  std::ifstream in(std::string(DPONE_SOURCE_DIR) + "/docs/errors.md");
  ASSERT_TRUE(in) << "docs/errors.md missing";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
#define DPONE_X(id, name, cat, retry)                                                            \
  {                                                                                              \
    auto code = dpone::ErrorCode::id;                                                            \
    std::string row = std::string("| `") + name + "` | " + std::to_string(dpone::exit_code_for(code)) + \
                      " | " + (dpone::error_retryable(code) ? "yes" : "no") + " |";              \
    EXPECT_NE(doc.find(row), std::string::npos) << "docs/errors.md lacks: " << row;              \
  }
  DPONE_ERROR_CODES(DPONE_X)
#undef DPONE_X
}

TEST(Errors, CategoriesMapToExitCodes) {
  EXPECT_EQ(dpone::exit_code_for(dpone::ErrorCode::ConfigUnknownKey), 2);
  EXPECT_EQ(dpone::exit_code_for(dpone::ErrorCode::ModuleMissing), 3);
  EXPECT_EQ(dpone::exit_code_for(dpone::ErrorCode::KeyDuplicate), 1);
  EXPECT_EQ(dpone::error_code_name(dpone::ErrorCode::TypeOverflow), "TYPE_OVERFLOW");
}
