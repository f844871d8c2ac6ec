#include "core/connector/reconcile_sql.hpp"

#include <sqlite3.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "core/connector/sql_gates.hpp"
#include "core/errors.hpp"

namespace dpone {

namespace {

std::string join(const std::vector<std::string>& parts, const char* sep) {
  return fmt::format("{}", fmt::join(parts, sep));
}

// What the plan needs to know, derived once.
struct Ctx {
  const StrategySpec& strategy;
  const ReconcileTables& tables;
  const ReconcileDialect& d;
  std::string as_of;
  bool soft = false;
  bool scd2 = false;

  std::string q(const std::string& name) const { return d.quote_ident(name); }

  // "t.k1 = s.k1 AND ..." (keys are NOT NULL in staging: the key gates ran before).
  std::string key_match(const std::string& a, const std::string& b) const {
    std::vector<std::string> out;
    for (const auto& k : strategy.unique_key)
      out.push_back(fmt::format("{}.{} = {}.{}", a, q(k), b, q(k)));
    return join(out, " AND ");
  }
  std::string live(const std::string& alias) const {
    if (scd2) return fmt::format("{}.{} = {}", alias, q(kIsCurrentColumn), d.true_literal);
    if (soft) return fmt::format("{}.{} IS NULL", alias, q(kDeletedAtColumn));
    return "";
  }
  std::string and_live(const std::string& alias) const {
    std::string l = live(alias);
    return l.empty() ? "" : " AND " + l;
  }
  std::string where_live(const std::string& alias) const {
    std::string l = live(alias);
    return l.empty() ? "" : " WHERE " + l;
  }
  std::string hash(const std::string& alias) const {
    return row_hash_sql(tables.columns, alias, d);
  }
  std::string stg() const { return tables.staging + " AS s"; }
  std::string tgt() const { return tables.target + " AS t"; }
  std::string exists_in_staging() const {
    return fmt::format("EXISTS (SELECT 1 FROM {} WHERE {})", stg(), key_match("s", "t"));
  }
  // The stream's columns and the copied (lineage) ones, as the INSERTs name them.
  std::string columns(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& c : tables.columns) out.push_back(prefix + q(c.name));
    for (const auto& c : tables.copied) out.push_back(prefix + q(c.name));
    return join(out, ", ");
  }
  // Soft-delete flags cleared (a key that reappears is reactivated).
  std::vector<std::string> clear_soft() const {
    std::vector<std::string> out{fmt::format("{} = NULL", q(kDeletedAtColumn))};
    if (strategy.reconcile.is_deleted_column)
      out.push_back(fmt::format("{} = {}", q(kIsDeletedColumn), d.false_literal));
    return out;
  }
};

void add_column(const Ctx& c, std::vector<std::string>& out, const char* name,
                const std::string& type) {
  if (c.tables.target_columns.count(name)) return;
  out.push_back(fmt::format("ALTER TABLE {} ADD COLUMN {} {}", c.tables.target, c.q(name), type));
}

void plan_deletes(const Ctx& c, ReconcilePlan& plan) {
  const std::string missing = fmt::format("NOT {}", c.exists_in_staging());
  switch (c.strategy.reconcile.delete_policy) {
    case DeletePolicy::Ignore:
      break;
    case DeletePolicy::HardDelete:
      plan.apply.push_back(fmt::format("DELETE FROM {} WHERE {}", c.tgt(), missing));
      break;
    case DeletePolicy::SoftDelete: {
      std::vector<std::string> sets{fmt::format("{} = {}", c.q(kDeletedAtColumn), c.as_of)};
      if (c.strategy.reconcile.is_deleted_column)
        sets.push_back(fmt::format("{} = {}", c.q(kIsDeletedColumn), c.d.true_literal));
      plan.apply.push_back(fmt::format("UPDATE {} SET {} WHERE {} AND {}", c.tgt(),
                                       join(sets, ", "), c.live("t"), missing));
      break;
    }
  }
}

}  // namespace

bool is_system_column(std::string_view name) {
  constexpr std::string_view kPrefix = "__dpone__";
  constexpr std::string_view kRouted = "__dpone__nc__";
  return name.substr(0, kPrefix.size()) == kPrefix && name.substr(0, kRouted.size()) != kRouted;
}

std::string row_hash_sql(const std::vector<Column>& columns, const std::string& alias,
                         const ReconcileDialect& d) {
  // Per column "N" for NULL, else "<length>:<text>": the length prefix makes the
  // concatenation unambiguous without a separator that values could contain.
  std::vector<std::string> parts;
  for (const auto& col : columns) {
    std::string ref = alias + "." + d.quote_ident(col.name);
    std::string text = d.value_text(ref, col.type);
    parts.push_back(
        fmt::format("CASE WHEN {} IS NULL THEN 'N' ELSE CAST(length({}) AS {}) || ':' || {} END",
                    ref, text, d.text_type, text));
  }
  if (parts.empty()) parts.push_back("''");
  return d.hash_text(join(parts, " || "));
}

ReconcilePlan plan_reconcile(const StrategySpec& strategy, const ReconcileTables& tables,
                             const ReconcileDialect& dialect, const std::string& as_of) {
  if (!strategy.reconciles()) {
    throw Error(ErrorCode::Internal, "plan_reconcile called for the strategy " +
                                         to_string(strategy.mode) + ", which does not reconcile");
  }
  if (strategy.unique_key.empty()) {
    throw Error(ErrorCode::ConfigMissingKey,
                fmt::format("strategy {} needs `unique_key` (the columns that identify a row)",
                            to_string(strategy.mode)));
  }
  for (const auto& k : strategy.unique_key) {
    bool found = std::any_of(tables.columns.begin(), tables.columns.end(),
                             [&](const Column& c) { return c.name == k; });
    if (!found) {
      std::vector<std::string> names;
      for (const auto& c : tables.columns) names.push_back(c.name);
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("unique_key column '{}' is not a column of the stream", k),
                  fmt::format("columns: {}", join(names, ", ")));
    }
  }
  Ctx c{strategy, tables, dialect, as_of};
  c.scd2 = strategy.mode == StrategyMode::Scd2;
  c.soft = !c.scd2 && strategy.reconcile.delete_policy == DeletePolicy::SoftDelete;
  ReconcilePlan plan;

  // --- prepare: system columns ------------------------------------------------------
  if (c.scd2) {
    const bool adopt = !tables.target_columns.count(kIsCurrentColumn);
    add_column(c, plan.prepare, kValidFromColumn, dialect.timestamp_type);
    add_column(c, plan.prepare, kValidToColumn, dialect.timestamp_type);
    add_column(c, plan.prepare, kIsCurrentColumn, dialect.bool_type);
    add_column(c, plan.prepare, kRowHashColumn, dialect.text_type);
    // Rows of a table that was not a history table yet become its current versions.
    if (adopt) {
      plan.prepare.push_back(
          fmt::format("UPDATE {} SET {} = {}, {} = {}, {} = {} WHERE t.{} IS NULL", c.tgt(),
                      c.q(kValidFromColumn), as_of, c.q(kIsCurrentColumn), dialect.true_literal,
                      c.q(kRowHashColumn), c.hash("t"), c.q(kIsCurrentColumn)));
    }
  } else if (c.soft) {
    add_column(c, plan.prepare, kDeletedAtColumn, dialect.timestamp_type);
    if (strategy.reconcile.is_deleted_column) {
      const bool backfill = !tables.target_columns.count(kIsDeletedColumn);
      // NOT NULL DEFAULT false: rows inserted later (which do not name it) are live.
      add_column(c, plan.prepare, kIsDeletedColumn,
                 fmt::format("{} NOT NULL DEFAULT {}", dialect.bool_type, dialect.false_literal));
      if (backfill) {
        plan.prepare.push_back(
            fmt::format("UPDATE {} SET {} = CASE WHEN {} IS NULL THEN {} ELSE {} END",
                        tables.target, c.q(kIsDeletedColumn), c.q(kDeletedAtColumn),
                        dialect.false_literal, dialect.true_literal));
      }
    }
  }

  // --- counts (before anything changes) ----------------------------------------------
  const std::string km = c.key_match("t", "s");
  plan.counts.emplace_back("staged", "SELECT count(*) FROM " + tables.staging);
  plan.counts.emplace_back("target_rows",
                           fmt::format("SELECT count(*) FROM {}{}", c.tgt(), c.where_live("t")));
  plan.counts.emplace_back(
      "inserted",
      fmt::format("SELECT count(*) FROM {} WHERE NOT EXISTS (SELECT 1 FROM {} WHERE {})", c.stg(),
                  c.tgt(), km));
  if (c.scd2) {
    // Re-inserted: no current version, but an expired one.
    plan.counts.emplace_back("reactivated",
                             fmt::format("SELECT count(*) FROM {} WHERE NOT EXISTS (SELECT 1 FROM "
                                         "{} WHERE {}{}) AND EXISTS (SELECT 1 FROM "
                                         "{} WHERE {})",
                                         c.stg(), c.tgt(), km, c.and_live("t"), c.tgt(), km));
    plan.counts.emplace_back(
        "updated", fmt::format("SELECT count(*) FROM {} JOIN {} ON {}{} WHERE t.{} <> {}", c.stg(),
                               c.tgt(), km, c.and_live("t"), c.q(kRowHashColumn), c.hash("s")));
    plan.counts.emplace_back(
        "unchanged", fmt::format("SELECT count(*) FROM {} JOIN {} ON {}{} WHERE t.{} = {}", c.stg(),
                                 c.tgt(), km, c.and_live("t"), c.q(kRowHashColumn), c.hash("s")));
  } else {
    if (c.soft) {
      plan.counts.emplace_back(
          "reactivated", fmt::format("SELECT count(*) FROM {} JOIN {} ON {} WHERE t.{} IS NOT NULL",
                                     c.stg(), c.tgt(), km, c.q(kDeletedAtColumn)));
    }
    plan.counts.emplace_back(
        "updated", fmt::format("SELECT count(*) FROM {} JOIN {} ON {}{} WHERE {} <> {}", c.stg(),
                               c.tgt(), km, c.and_live("t"), c.hash("s"), c.hash("t")));
    plan.counts.emplace_back(
        "unchanged", fmt::format("SELECT count(*) FROM {} JOIN {} ON {}{} WHERE {} = {}", c.stg(),
                                 c.tgt(), km, c.and_live("t"), c.hash("s"), c.hash("t")));
  }
  plan.counts.emplace_back("missing", fmt::format("SELECT count(*) FROM {} WHERE {}NOT {}", c.tgt(),
                                                  c.live("t").empty() ? "" : c.live("t") + " AND ",
                                                  c.exists_in_staging()));

  // --- apply --------------------------------------------------------------------------
  switch (strategy.mode) {
    case StrategyMode::SnapshotDiff: {
      std::vector<std::string> sets;
      for (const auto& col : tables.columns) {
        if (std::find(strategy.unique_key.begin(), strategy.unique_key.end(), col.name) !=
            strategy.unique_key.end())
          continue;
        sets.push_back(fmt::format("{} = s.{}", c.q(col.name), c.q(col.name)));
      }
      for (const auto& col : tables.copied)
        sets.push_back(fmt::format("{} = s.{}", c.q(col.name), c.q(col.name)));
      std::string changed = fmt::format("{} <> {}", c.hash("s"), c.hash("t"));
      if (c.soft) {
        for (auto& s : c.clear_soft()) sets.push_back(std::move(s));
        changed = fmt::format("({} OR t.{} IS NOT NULL)", changed, c.q(kDeletedAtColumn));
      }
      if (!sets.empty()) {
        plan.apply.push_back(fmt::format("UPDATE {} SET {} FROM {} WHERE {} AND {}", c.tgt(),
                                         join(sets, ", "), c.stg(), km, changed));
      }
      plan.apply.push_back(fmt::format(
          "INSERT INTO {} ({}) SELECT {} FROM {} WHERE NOT EXISTS (SELECT 1 FROM {} WHERE {})",
          tables.target, c.columns(""), c.columns("s."), c.stg(), c.tgt(), km));
      plan_deletes(c, plan);
      break;
    }
    case StrategyMode::Scd2: {
      const std::string close = fmt::format("{} = {}, {} = {}", c.q(kValidToColumn), as_of,
                                            c.q(kIsCurrentColumn), dialect.false_literal);
      plan.apply.push_back(fmt::format("UPDATE {} SET {} FROM {} WHERE {} AND {} AND t.{} <> {}",
                                       c.tgt(), close, c.stg(), km, c.live("t"),
                                       c.q(kRowHashColumn), c.hash("s")));
      plan.apply.push_back(fmt::format("UPDATE {} SET {} WHERE {} AND NOT {}", c.tgt(), close,
                                       c.live("t"), c.exists_in_staging()));
      plan.apply.push_back(
          fmt::format("INSERT INTO {} ({}, {}, {}, {}, {}) SELECT {}, {}, NULL, {}, {} FROM {} "
                      "WHERE NOT EXISTS (SELECT 1 FROM {} "
                      "WHERE {}{})",
                      tables.target, c.columns(""), c.q(kValidFromColumn), c.q(kValidToColumn),
                      c.q(kIsCurrentColumn), c.q(kRowHashColumn), c.columns("s."), as_of,
                      dialect.true_literal, c.hash("s"), c.stg(), c.tgt(), km, c.and_live("t")));
      break;
    }
    case StrategyMode::Merge:
      // After the sink's merge: soft-deleted keys that reappeared are live again.
      if (c.soft) {
        plan.apply.push_back(fmt::format("UPDATE {} SET {} WHERE t.{} IS NOT NULL AND {}", c.tgt(),
                                         join(c.clear_soft(), ", "), c.q(kDeletedAtColumn),
                                         c.exists_in_staging()));
      }
      plan_deletes(c, plan);
      break;
    default:
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("reconciliation works with merge, snapshot_diff and scd2, not {}",
                              to_string(strategy.mode)));
  }

  // --- verify (after apply): the target's live rows must equal the staged snapshot ----
  if (strategy.reconcile.verify != VerifyMode::Off) {
    // Compared target rows: the live ones (scd2: current versions). delete_policy ignore
    // keeps target-only keys on purpose, so only the snapshot's keys are compared there.
    std::vector<std::string> scope;
    if (!c.live("t").empty()) scope.push_back(c.live("t"));
    if (!c.scd2 && strategy.reconcile.delete_policy == DeletePolicy::Ignore)
      scope.push_back(c.exists_in_staging());
    const std::string where_scope = scope.empty() ? "" : " WHERE " + join(scope, " AND ");
    const std::string and_scope = scope.empty() ? "" : " AND " + join(scope, " AND ");
    plan.verify.emplace_back("target_live_rows",
                             fmt::format("SELECT count(*) FROM {}{}", c.tgt(), where_scope));
    if (dialect.hash_sum) {
      plan.verify.emplace_back(
          "staged_checksum",
          fmt::format("SELECT {} FROM {}", dialect.hash_sum(c.hash("s")), c.stg()));
      plan.verify.emplace_back(
          "target_checksum",
          fmt::format("SELECT {} FROM {}{}", dialect.hash_sum(c.hash("t")), c.tgt(), where_scope));
    }
    plan.verify_detail.emplace_back(
        "staged_rows_not_in_target",
        fmt::format("SELECT count(*) FROM {} WHERE NOT EXISTS (SELECT 1 FROM {} WHERE {}{} AND "
                    "{} = {})",
                    c.stg(), c.tgt(), km, and_scope, c.hash("t"), c.hash("s")));
    plan.verify_detail.emplace_back(
        "target_rows_not_in_staging",
        fmt::format(
            "SELECT count(*) FROM {}{}{} NOT EXISTS (SELECT 1 FROM {} WHERE {} AND {} = {})",
            c.tgt(), where_scope, scope.empty() ? " WHERE" : " AND", c.stg(), km, c.hash("s"),
            c.hash("t")));
  }
  return plan;
}

LineagePlan plan_lineage(const StrategySpec& strategy, const ReconcileTables& tables,
                         const std::set<std::string>& staging_columns, const ReconcileDialect& d,
                         const std::string& run_id, const std::string& as_of) {
  LineagePlan plan;
  if (!strategy.lineage.any()) return plan;
  struct Wanted {
    bool on;
    const char* name;
    LogicalType type;
    std::string declared;
    std::string value;
  };
  // scd2 maintains __dpone__row_hash itself (the same expression): not copied twice.
  const bool row_hash = strategy.lineage.row_hash && strategy.mode != StrategyMode::Scd2;
  const std::vector<Wanted> wanted = {
      {strategy.lineage.run_id, kRunIdColumn, LogicalType::of(TypeId::String), d.text_type,
       "'" +
           [&] {
             std::string v;
             for (char ch : run_id) v += ch == '\'' ? std::string("''") : std::string(1, ch);
             return v;
           }() +
           "'"},
      {strategy.lineage.loaded_at, kLoadedAtColumn, LogicalType::timestamp(3, true),
       d.timestamp_type, as_of},
      {row_hash, kRowHashColumn, LogicalType::of(TypeId::String), d.text_type,
       row_hash_sql(tables.columns, tables.staging, d)}};
  std::vector<std::string> sets;
  for (const auto& w : wanted) {
    if (!w.on) continue;
    if (!staging_columns.count(w.name))
      plan.sql.push_back(fmt::format("ALTER TABLE {} ADD COLUMN {} {}", tables.staging,
                                     d.quote_ident(w.name), w.declared));
    if (!tables.target_columns.count(w.name))
      plan.sql.push_back(fmt::format("ALTER TABLE {} ADD COLUMN {} {}", tables.target,
                                     d.quote_ident(w.name), w.declared));
    sets.push_back(fmt::format("{} = {}", d.quote_ident(w.name), w.value));
    plan.columns.push_back(Column{w.name, w.type, true});
  }
  if (!sets.empty())
    plan.sql.push_back(fmt::format("UPDATE {} SET {}", tables.staging, join(sets, ", ")));
  return plan;
}

namespace {

// The guards' verdict: what was judged, and the breach (message, hint) if any.
struct GuardVerdict {
  nlohmann::json judged;
  std::optional<std::pair<std::string, std::string>> breach;
};

GuardVerdict judge_delete_guards(const StrategySpec& strategy, const ReconcileCounts& counts,
                                 const std::string& where, const std::string& target_name) {
  const ReconcileSpec& r = strategy.reconcile;
  const double ratio = counts.target_rows > 0 ? static_cast<double>(counts.deleted) /
                                                    static_cast<double>(counts.target_rows)
                                              : 0.0;
  GuardVerdict v;
  v.judged = {{"would_delete", counts.deleted},
              {"target_rows", counts.target_rows},
              {"delete_ratio", std::round(ratio * 10000.0) / 10000.0},
              {"max_delete_ratio", r.max_delete_ratio},
              {"max_delete_rows",
               r.max_delete_rows ? nlohmann::json(*r.max_delete_rows) : nlohmann::json()},
              {"allow_empty_snapshot", r.allow_empty_snapshot},
              {"passed", true}};
  if (counts.deleted == 0) return v;
  const std::string verb = strategy.mode == StrategyMode::Scd2 ? "expire" : "delete";
  const std::string hint =
      "nothing was applied: target and state are unchanged. If the source really lost these rows, "
      "raise the "
      "guard (reconciliation.max_delete_ratio / max_delete_rows / allow_empty_snapshot) for one "
      "run";
  auto breach = [&](const char* guard, std::string message) {
    v.judged["passed"] = false;
    v.judged["breached"] = guard;
    v.breach.emplace(std::move(message), hint);
  };
  if (counts.staged == 0 && !r.allow_empty_snapshot) {
    breach("empty_snapshot",
           fmt::format("{}: delete guard: the source snapshot is empty and would {} all {} "
                       "live rows of {}; an "
                       "empty snapshot never deletes by default",
                       where, verb, counts.deleted, target_name));
  } else if (r.max_delete_rows && counts.deleted > *r.max_delete_rows) {
    breach("max_delete_rows",
           fmt::format("{}: delete guard: the snapshot would {} {} rows of {}, more than "
                       "max_delete_rows ({})",
                       where, verb, counts.deleted, target_name, *r.max_delete_rows));
  } else if (ratio > r.max_delete_ratio) {
    breach("max_delete_ratio",
           fmt::format("{}: delete guard: the snapshot would {} {} of {} live rows of {} "
                       "({:.1f}%), more than max_delete_ratio {} ({:.1f}%)",
                       where, verb, counts.deleted, counts.target_rows, target_name, ratio * 100.0,
                       r.max_delete_ratio, r.max_delete_ratio * 100.0));
  }
  return v;
}

}  // namespace

nlohmann::json check_delete_guards(const StrategySpec& strategy, const ReconcileCounts& counts,
                                   const std::string& where, const std::string& target_name) {
  GuardVerdict v = judge_delete_guards(strategy, counts, where, target_name);
  if (v.breach) throw Error(ErrorCode::GateFailed, v.breach->first, v.breach->second);
  return v.judged;
}

ReconcileError::ReconcileError(ErrorCode code, std::string message, std::string hint,
                               nlohmann::json reconciliation)
    : Error(code, std::move(message), std::move(hint)),
      reconciliation_(std::move(reconciliation)) {}

ReconcileError::~ReconcileError() = default;

void run_reconcile(const ReconcilePlan& plan, const StrategySpec& strategy, ReconcileRunner& runner,
                   const std::function<void()>& sink_strategy, const std::string& where,
                   const std::string& target_name, const std::string& as_of_iso,
                   PromoteResult& result) {
  for (const auto& sql : plan.prepare) {
    runner.exec(sql);
    result.sql.push_back(sql);
  }
  ReconcileCounts counts;
  for (const auto& [name, sql] : plan.counts) {
    int64_t n = runner.count(sql);
    result.sql.push_back(sql);
    if (name == "staged")
      counts.staged = n;
    else if (name == "target_rows")
      counts.target_rows = n;
    else if (name == "inserted")
      counts.inserted = n;
    else if (name == "updated")
      counts.updated = n;
    else if (name == "unchanged")
      counts.unchanged = n;
    else if (name == "reactivated")
      counts.reactivated = n;
    else if (name == "missing")
      counts.missing = n;
  }
  const bool deletes = strategy.mode == StrategyMode::Scd2 ||
                       strategy.reconcile.delete_policy != DeletePolicy::Ignore;
  counts.deleted = deletes ? counts.missing : 0;
  nlohmann::json record = {{"mode", "key_snapshot"},
                           {"strategy", to_string(strategy.mode)},
                           {"delete_policy", strategy.mode == StrategyMode::Scd2
                                                 ? std::string("expire")
                                                 : to_string(strategy.reconcile.delete_policy)},
                           {"as_of", as_of_iso},
                           {"staged", counts.staged},
                           {"target_rows_before", counts.target_rows},
                           {"inserted", counts.inserted},
                           {"updated", counts.updated},
                           {"unchanged", counts.unchanged},
                           {"deleted", counts.deleted},
                           {"reactivated", counts.reactivated},
                           {"missing_at_source", counts.missing}};
  GuardVerdict guards = judge_delete_guards(strategy, counts, where, target_name);
  record["guards"] = guards.judged;
  if (guards.breach) {
    // Nothing changed but DDL, which the caller's rollback undoes.
    record["applied"] = false;
    throw ReconcileError(ErrorCode::GateFailed, guards.breach->first, guards.breach->second,
                         std::move(record));
  }
  if (sink_strategy) sink_strategy();
  for (const auto& sql : plan.apply) {
    runner.exec(sql);
    result.sql.push_back(sql);
  }

  // Post-load verification: the target's live rows against the staged snapshot.
  if (strategy.reconcile.verify != VerifyMode::Off && !plan.verify.empty()) {
    nlohmann::json post{{"verify", to_string(strategy.reconcile.verify)},
                        {"staged_rows", counts.staged}};
    std::map<std::string, int64_t> v;
    for (const auto& [name, sql] : plan.verify) {
      v[name] = runner.count(sql);
      result.sql.push_back(sql);
    }
    post["target_live_rows"] = v["target_live_rows"];
    const bool rows_match = v["target_live_rows"] == counts.staged;
    bool checksum_match = true;
    if (v.count("staged_checksum")) {
      post["staged_checksum"] = v["staged_checksum"];
      post["target_checksum"] = v["target_checksum"];
      checksum_match = v["staged_checksum"] == v["target_checksum"];
    }
    // Without a checksum (dialect without hash_sum) the row comparison decides.
    const bool detail = !rows_match || !checksum_match || !v.count("staged_checksum");
    if (detail) {
      for (const auto& [name, sql] : plan.verify_detail) {
        int64_t n = runner.count(sql);
        post[name] = n;
        result.sql.push_back(sql);
      }
      if (!v.count("staged_checksum"))
        checksum_match = post.value("staged_rows_not_in_target", int64_t{0}) == 0 &&
                         post.value("target_rows_not_in_staging", int64_t{0}) == 0;
    }
    post["rows_match"] = rows_match;
    post["checksum_match"] = checksum_match;
    post["passed"] = rows_match && checksum_match;
    if (!rows_match || !checksum_match) {
      std::string message = fmt::format(
          "{}: post-load verification: {} does not match the staged snapshot: {} staged rows, {} "
          "live target rows{}, content checksum {}",
          where, target_name, counts.staged, v["target_live_rows"],
          post.contains("staged_rows_not_in_target")
              ? fmt::format(" ({} staged rows without an identical live target row, {} live "
                            "target rows without an identical staged row)",
                            post.value("staged_rows_not_in_target", int64_t{0}),
                            post.value("target_rows_not_in_staging", int64_t{0}))
              : std::string(),
          checksum_match ? "equal" : "different");
      post["message"] = message;
      if (strategy.reconcile.verify == VerifyMode::Error) {
        record["post_load"] = post;
        record["applied"] = false;
        throw ReconcileError(
            ErrorCode::GateFailed, message,
            "the promotion was rolled back: target and state are unchanged. Something changed "
            "the rows as they were written (a trigger, a default, a column type that does not "
            "keep the values, a concurrent writer): inspect the target; set "
            "reconciliation.verify: warn to load anyway",
            std::move(record));
      }
    }
    record["post_load"] = post;
  }
  result.inserted = counts.inserted;
  result.updated = counts.updated;
  result.deleted = counts.deleted;
  record["applied"] = true;
  result.reconciliation = std::move(record);
}

namespace {

void sqlite_row_hash(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  if (argc != 1 || sqlite3_value_type(argv[0]) == SQLITE_NULL) {
    sqlite3_result_null(ctx);
    return;
  }
  const auto* p = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  int n = sqlite3_value_bytes(argv[0]);
  std::string hex =
      fmt::format("{:016x}", md5_prefix64(std::string_view(p ? p : "", static_cast<size_t>(n))));
  sqlite3_result_text(ctx, hex.c_str(), static_cast<int>(hex.size()), SQLITE_TRANSIENT);
}

// dpone_hash_sum(hash): sum of the first 15 hex digits of each 16-digit row hash, modulo
// 2^60 (PostgreSQL computes the same with bit(60)::bigint, see pg_sink's hash_sum). NULLs
// are skipped; no rows give 0.
constexpr uint64_t kHashSumModulo = uint64_t{1} << 60;

void sqlite_hash_sum_step(sqlite3_context* ctx, int, sqlite3_value** argv) {
  auto* sum = static_cast<uint64_t*>(sqlite3_aggregate_context(ctx, sizeof(uint64_t)));
  if (!sum || sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  const auto* p = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  const int n = sqlite3_value_bytes(argv[0]);
  uint64_t v = 0;
  for (int i = 0; p && i < n && i < 15; ++i) {
    const char ch = p[i];
    const int d = ch >= '0' && ch <= '9'   ? ch - '0'
                  : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                  : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                           : 0;
    v = v * 16 + static_cast<uint64_t>(d);
  }
  *sum = (*sum + v) % kHashSumModulo;
}

void sqlite_hash_sum_final(sqlite3_context* ctx) {
  auto* sum = static_cast<uint64_t*>(sqlite3_aggregate_context(ctx, 0));
  sqlite3_result_int64(ctx, sum ? static_cast<sqlite3_int64>(*sum) : 0);
}

}  // namespace

void register_sqlite_reconcile_functions(sqlite3* db) {
  int rc = sqlite3_create_function_v2(db, "dpone_row_hash", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                      nullptr, sqlite_row_hash, nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_function_v2(db, "dpone_hash_sum", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                    nullptr, nullptr, sqlite_hash_sum_step, sqlite_hash_sum_final,
                                    nullptr);
  }
  if (rc != SQLITE_OK) {
    throw Error(
        ErrorCode::Internal,
        std::string("cannot register the SQLite reconciliation functions: ") + sqlite3_errstr(rc));
  }
}

std::vector<std::string> describe_reconcile(const StrategySpec& strategy, const ReconcilePlan* plan) {
  std::vector<std::string> out;
  if (strategy.lineage.any())
    out.push_back(
        "-- lineage: the staging table gets the lineage columns (run id, the run's as-of time, "
        "row hash) filled with one UPDATE; the strategy copies them with each row it writes");
  if (plan) {
    out.insert(out.end(), plan->prepare.begin(), plan->prepare.end());
    for (const auto& [name, sql] : plan->counts) out.push_back(sql);
    out.push_back("-- delete guards judged here: a breach rolls back and applies nothing");
  }
  return out;
}

}  // namespace dpone
