// The resolution of unsafe schema changes (SPEC: they fail "with the exact change and the
// DDL that would resolve it"): DDL in the sink's dialect where its renderer can render it,
// portable DDL for drops, renames and NOT NULL, and the manifest alternative.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "core/errors.hpp"
#include "core/evolution/schema_diff.hpp"

using namespace dpone;

namespace {

Schema make(std::vector<Column> cols) {
  return Schema{std::move(cols), {}};
}
Column col(std::string n, std::string t, bool nullable = true) {
  return Column{std::move(n), *LogicalType::parse(t), nullable};
}

// A PostgreSQL-like renderer: ADD COLUMN, ALTER COLUMN TYPE, DROP NOT NULL.
std::vector<std::string> pg_like(const SchemaChange& c) {
  switch (c.kind) {
    case ChangeKind::AddColumn:
      return {fmt::format("ALTER TABLE \"s\".\"t\" ADD COLUMN \"{}\" {}", c.column,
                          c.to->type.to_string())};
    case ChangeKind::WidenType:
      return {fmt::format("ALTER TABLE \"s\".\"t\" ALTER COLUMN \"{}\" TYPE {}", c.column,
                          c.to->type.to_string())};
    case ChangeKind::MakeNullable:
      return {fmt::format("ALTER TABLE \"s\".\"t\" ALTER COLUMN \"{}\" DROP NOT NULL", c.column)};
    default:
      throw Error(ErrorCode::SchemaUnsafeChange, "cannot");
  }
}

// A renderer that can only add columns (SQLite cannot change constraints in place).
std::vector<std::string> add_only(const SchemaChange& c) {
  if (c.kind != ChangeKind::AddColumn) throw Error(ErrorCode::SchemaUnsafeChange, "cannot");
  return {"ALTER TABLE \"main\".\"t\" ADD COLUMN \"" + c.column + "\""};
}

const Resolution* only(const std::vector<Resolution>& rs) {
  return rs.size() == 1 ? &rs[0] : nullptr;
}

std::vector<Resolution> resolve_all(const Schema& source, const Schema& target,
                                    EvolutionPolicy policy, const DdlRenderer& render) {
  auto d = compare_schemas(source, target, policy);
  std::vector<Resolution> out;
  for (const auto* c : d.unsafe())
    out.push_back(resolve_unsafe(*c, "s.t", policy, OnTypeChange::Fail, render));
  return out;
}

}  // namespace

TEST(Resolution, NarrowingAndTypeChangeGetTheSinksAlterType) {
  auto target = make({col("id", "int64"), col("qty", "int64")});
  auto narrowed = make({col("id", "int64"), col("qty", "int32")});
  auto rs = resolve_all(narrowed, target, EvolutionPolicy::Widening, pg_like);
  ASSERT_NE(only(rs), nullptr);
  EXPECT_EQ(rs[0].ddl,
            (std::vector<std::string>{"ALTER TABLE \"s\".\"t\" ALTER COLUMN \"qty\" TYPE int32"}));
  EXPECT_NE(rs[0].alternative.find("make the source produce int64 again"), std::string::npos)
      << rs[0].alternative;

  auto changed = make({col("id", "int64"), col("qty", "string")});
  rs = resolve_all(changed, target, EvolutionPolicy::Widening, pg_like);
  ASSERT_NE(only(rs), nullptr);
  EXPECT_EQ(rs[0].ddl,
            (std::vector<std::string>{"ALTER TABLE \"s\".\"t\" ALTER COLUMN \"qty\" TYPE string"}));
  EXPECT_NE(rs[0].alternative.find("on_type_change: new_column"), std::string::npos);
  // A sink that cannot retype in place: the rebuild is what resolves it.
  rs = resolve_all(changed, target, EvolutionPolicy::Widening, add_only);
  ASSERT_NE(only(rs), nullptr);
  EXPECT_TRUE(rs[0].ddl.empty());
  EXPECT_NE(rs[0].alternative.find("rebuild the table"), std::string::npos);
}

TEST(Resolution, DropRenameAndNullabilityHavePortableDdl) {
  auto target = make({col("id", "int64"), col("qty", "int32"), col("note", "string")});
  auto dropped = make({col("id", "int64"), col("qty", "int32")});
  auto rs = resolve_all(dropped, target, EvolutionPolicy::Widening, pg_like);
  ASSERT_NE(only(rs), nullptr);
  EXPECT_EQ(rs[0].ddl, (std::vector<std::string>{"ALTER TABLE \"s\".\"t\" DROP COLUMN \"note\""}));

  auto renamed = make({col("id", "int64"), col("qty", "int32"), col("remark", "string")});
  rs = resolve_all(renamed, target, EvolutionPolicy::Widening, pg_like);
  ASSERT_NE(only(rs), nullptr);
  EXPECT_EQ(
      rs[0].ddl,
      (std::vector<std::string>{"ALTER TABLE \"s\".\"t\" RENAME COLUMN \"note\" TO \"remark\""}));

  auto not_null_target =
      make({col("id", "int64"), col("qty", "int32", false), col("note", "string")});
  rs = resolve_all(target, not_null_target, EvolutionPolicy::Widening, pg_like);
  ASSERT_NE(only(rs), nullptr);
  EXPECT_EQ(
      rs[0].ddl,
      (std::vector<std::string>{"ALTER TABLE \"s\".\"t\" ALTER COLUMN \"qty\" DROP NOT NULL"}));
  auto not_null_source =
      make({col("id", "int64"), col("qty", "int32", false), col("note", "string")});
  rs = resolve_all(not_null_source, target, EvolutionPolicy::Widening, pg_like);
  ASSERT_NE(only(rs), nullptr);
  EXPECT_EQ(
      rs[0].ddl,
      (std::vector<std::string>{"ALTER TABLE \"s\".\"t\" ALTER COLUMN \"qty\" SET NOT NULL"}));
  // Where the sink cannot change constraints in place, no DDL that would not run.
  rs = resolve_all(not_null_source, target, EvolutionPolicy::Widening, add_only);
  ASSERT_NE(only(rs), nullptr);
  EXPECT_TRUE(rs[0].ddl.empty());
  EXPECT_NE(rs[0].alternative.find("rebuild the table"), std::string::npos);
}

TEST(Resolution, StrictPolicyNamesThePolicyThatAllowsIt) {
  auto target = make({col("id", "int64"), col("qty", "int32")});
  auto source = make({col("id", "int64"), col("qty", "int64"), col("note", "string")});
  auto rs = resolve_all(source, target, EvolutionPolicy::Strict, pg_like);
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].ddl,
            (std::vector<std::string>{"ALTER TABLE \"s\".\"t\" ALTER COLUMN \"qty\" TYPE int64"}));
  EXPECT_NE(rs[0].alternative.find("schema_evolution.policy: widening"), std::string::npos);
  EXPECT_EQ(rs[1].ddl,
            (std::vector<std::string>{"ALTER TABLE \"s\".\"t\" ADD COLUMN \"note\" string"}));
  EXPECT_NE(rs[1].alternative.find("schema_evolution.policy: additive"), std::string::npos);
}

TEST(Resolution, MessageListsEachChangeWithItsDdl) {
  auto target = make({col("id", "int64"), col("qty", "int64"), col("note", "string")});
  auto source = make({col("id", "int64"), col("qty", "int32")});
  auto d = compare_schemas(source, target, EvolutionPolicy::Widening);
  std::string msg = unsafe_changes_message("items", d, EvolutionPolicy::Widening,
                                           OnTypeChange::Fail, "s.t", pg_like);
  EXPECT_NE(msg.find("stream items: schema change not allowed under policy 'widening':\n"
                     "  - narrow_type of column qty: int64 -> int32\n"
                     "    resolve with: ALTER TABLE \"s\".\"t\" ALTER COLUMN \"qty\" TYPE int32\n"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("  - column note (string, nullable) is in the target but not at the source\n"
                     "    resolve with: ALTER TABLE \"s\".\"t\" DROP COLUMN \"note\""),
            std::string::npos)
      << msg;
  auto j =
      unsafe_resolutions_json(d, EvolutionPolicy::Widening, OnTypeChange::Fail, "s.t", pg_like);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[1]["ddl"][0], "ALTER TABLE \"s\".\"t\" DROP COLUMN \"note\"");
}
