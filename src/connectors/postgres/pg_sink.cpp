// The postgres sink: staged loads into a table.
//
//   stage    -> CREATE UNLOGGED TABLE "<table>__dpone_stg_<run>" (no constraints), then
//               one COPY ... FROM STDIN in text format, fed batch by batch, or, for a
//               pg_copy_text / pg_copy_binary byte stream (pass-through), with the
//               source's bytes as is (binary: the staging columns get the source's exact
//               types). A full_refresh that exchanges into an existing target of the same
//               shape stages straight into the new table instead ("direct exchange":
//               CREATE TABLE stg (LIKE target INCLUDING ALL), then COPY), so promotion
//               only swaps names: the rows are written once, as a native COPY writes them.
//   check    -> not_null / unique as SQL on the staging table
//   promote  -> BEGIN; evolution DDL; strategy; receipt row in <schema>.__dpone__loads;
//               drop staging; COMMIT. Any failure rolls all of it back.
//
// Strategies (README.md "Strategies" has the SQL):
//   full_refresh truncate_insert: TRUNCATE + INSERT ... SELECT
//   full_refresh exchange: shadow table (LIKE target INCLUDING ALL), filled (or the
//     direct-exchange staging table itself), then the target is renamed away, the shadow
//     renamed in, owner and grants copied, the old table dropped and the new indexes
//     given the old names; all in the promotion transaction
//   full_refresh auto (default): exchange when nothing depends on the target's identity
//     (exchange_blockers()), else truncate_insert
//   append [only_new_rows]: INSERT ... SELECT [WHERE NOT EXISTS (same key)]
//   merge: INSERT ... ON CONFLICT (keys) DO UPDATE when a PK or a full unique index on
//     exactly the keys exists, else DELETE ... USING staging + INSERT
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>

#include "connectors/postgres/pg_connector.hpp"
#include "connectors/postgres/pg_internal_query.hpp"
#include "connectors/postgres/pg_state_store.hpp"
#include "core/connector/copy_rows.hpp"
#include "core/connector/reconcile_sql.hpp"
#include "core/connector/sql_gates.hpp"
#include "core/errors.hpp"
#include "core/util/failpoint.hpp"
#include "core/util/interrupt.hpp"
#include "core/util/time.hpp"

namespace dpone {

namespace {

using pg::PgConnection;
using pg::PgResult;
using pg::PgTransaction;
using pg::quote_ident;

constexpr int kMaxSamples = 5;
constexpr size_t kCopyChunk = 1 << 20;
constexpr const char* kLoadsTable = "__dpone__loads";
constexpr const char* kStagingInfix = "__dpone_stg_";
constexpr const char* kShadowInfix = "__dpone_new_";
constexpr const char* kOldInfix = "__dpone_old_";
// A binary COPY stream without rows: signature, flags, no extension, end marker.
constexpr std::string_view kEmptyBinaryCopy("PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0\377\377", 21);

struct TargetShape {
  bool exists = false;
  std::vector<std::string> primary_key;
  bool key_unique = false;          // PK or full unique index exactly on the merge key
  bool exchange = false;            // full_refresh: exchange (else truncate_insert)
  std::string overwrite_reason;     // full_refresh auto: why this method
  std::string owner;                // exchange: owner of the target
  std::optional<std::string> comment;  // exchange: COMMENT ON TABLE (LIKE copies only columns')
  std::vector<std::string> partition_key;  // declarative partition key columns, if any
  bool from_catalog = true;  // false: guessed from the stream's schema (no target yet)
  std::vector<std::string> grants;  // exchange: GRANT statements re-creating its ACL
};

// PairIndexes: before the swap, pair the new table's indexes (sql = its qualified name)
// with the target's; RenameIndexes: after the old table is dropped, give them the old names.
// Delete: runs and counts its rows as deleted. RowsOutsideSlice / PartitionCount: guards
// (replace, partition_replace) that fail the promotion with GATE_FAILED, nothing changed.
enum class StepKind {
  Exec, CountPrevious, CountStaged, CountUpdated, CountInserted, Insert, Delete, PairIndexes,
  RenameIndexes, RowsOutsideSlice, PartitionCount
};

struct Step {
  StepKind kind;
  std::string sql;
};

std::string join_quoted(const std::vector<std::string>& names, const std::string& prefix = {}) {
  std::vector<std::string> out;
  for (const auto& n : names) out.push_back(prefix + quote_ident(n));
  return fmt::format("{}", fmt::join(out, ", "));
}

std::string escape_like(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

class PgSink : public Sink {
 public:
  explicit PgSink(const SinkContext& ctx)
      : stream_(ctx.stream),
        run_id_(ctx.run_id),
        diagnostics_(ctx.diagnostics),
        on_progress_(ctx.on_progress) {
    pg::Options options(ctx.options, fmt::format("stream '{}': postgres sink", ctx.stream));
    where_ = options.where();
    connection_ = pg::require_connection(ctx.connection, where_);
    auto table = options.string("table");
    if (!table) {
      throw Error(ErrorCode::ConfigMissingKey,
                  fmt::format("{} needs the `table` option (the target table)", where_));
    }
    table_ = *table;
    schema_ = options.string("schema").value_or("public");
    if (ctx.options.is_object() && ctx.options.contains("strategy"))
      strategy_ = StrategySpec::from_json(ctx.options["strategy"]);
    internal_query_ = pg::internal_query_option(ctx.options, where_);
  }

  // --- plan-time ------------------------------------------------------------------

  TargetInfo inspect() override {
    TargetInfo info;
    info.name = target_name();
    PgConnection& db = handle(ErrorCode::SinkUnavailable);
    info.server = "PostgreSQL " + db.query_value("SHOW server_version").value_or("?");
    info.capabilities = {"COPY FROM STDIN into UNLOGGED staging", "transactional DDL",
                         "INSERT ... ON CONFLICT", "pg_copy_binary and pg_copy_text pass-through",
                         "direct exchange (full_refresh staged into the new table)"};
    check_schema(db);
    auto kind = pg::relation_kind(db, schema_, table_);
    if (!kind) return info;
    if (*kind != 'r' && *kind != 'p') {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: {} is not a table (relkind '{}'); the postgres sink loads "
                              "tables",
                              where_, target_name(), *kind));
    }
    info.exists = true;
    for (const auto& c : pg::table_columns(db, schema_, table_)) {
      // Columns dpone maintains (soft delete, scd2, lineage) are not source columns.
      if (is_system_column(c.name)) continue;
      auto mapped = pg::map_pg_type(c.formatted, c.category);
      if (!mapped.known && diagnostics_ && warned_.insert(c.name).second) {
        diagnostics_->warn(
            fmt::format("{}: column '{}' of {} has the type '{}', which dpone does not map; it is "
                        "compared as {}",
                        where_, c.name, target_name(), c.formatted, mapped.type.to_string()));
      }
      info.schema.columns.push_back(Column{c.name, mapped.type, !c.notnull});
    }
    info.schema.primary_key = pg::primary_key(db, schema_, table_);
    info.rows = db.query_int64("SELECT count(*) FROM " + qualified(table_));
    return info;
  }

  // COPY bytes first: a postgres source that offers them (pass-through) is staged
  // without decoding or re-encoding a single row; binary is cheaper for both servers.
  // Before them, the internal query (pg_internal_query.hpp), which the runtime picks only
  // when the source is on this very database.
  std::vector<ArtifactSpec> accepts() const override {
    std::vector<ArtifactSpec> out;
    if (internal_query_) out.push_back(ArtifactSpec{ArtifactKind::InternalQuery});
    out.insert(out.end(), {ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::PgCopyBinary},
                           ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::PgCopyText},
                           ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch}});
    return out;
  }

  std::vector<std::string> render_ddl(const Schema& source_schema,
                                      const std::vector<const SchemaChange*>& changes) override {
    std::vector<std::string> out;
    for (const SchemaChange* change : changes) {
      const Column* col = change->to ? &*change->to : nullptr;
      int idx = source_schema.find(change->column);
      if (!col && idx >= 0) col = &source_schema.columns[static_cast<size_t>(idx)];
      switch (change->kind) {
        case ChangeKind::CreateTable:
          if (source_schema.columns.empty()) {
            throw Error(ErrorCode::Internal,
                        fmt::format("{}: cannot create {} from a schema without columns", where_,
                                    target_name()));
          }
          if (strategy_ && strategy_->mode == StrategyMode::Scd2) {
            // A history table keeps several versions per key: no primary key on it.
            Schema history = source_schema;
            history.primary_key.clear();
            out.push_back(create_table_sql(qualified(table_), history, true, false));
          } else {
            out.push_back(create_table_sql(qualified(table_), source_schema, true, false));
          }
          break;
        case ChangeKind::AddColumn:
          if (!col) missing_definition(*change);
          // Added columns are nullable: existing rows have no value.
          out.push_back(fmt::format("ALTER TABLE {} ADD COLUMN {} {}", qualified(table_),
                                    quote_ident(col->name), pg::declared_type(col->type)));
          break;
        case ChangeKind::WidenType:
          if (!col) missing_definition(*change);
          out.push_back(fmt::format("ALTER TABLE {} ALTER COLUMN {} TYPE {}", qualified(table_),
                                    quote_ident(col->name), pg::declared_type(col->type)));
          break;
        case ChangeKind::MakeNotNull:
          break;  // the source promises no NULLs where the target allows them
        case ChangeKind::MakeNullable:
          out.push_back(fmt::format("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL",
                                    qualified(table_), quote_ident(change->column)));
          break;
        default:
          throw Error(ErrorCode::SchemaUnsafeChange,
                      fmt::format("{}: cannot apply '{}' to column '{}' of {}{}", where_,
                                  to_string(change->kind), change->column, target_name(),
                                  change->detail.empty() ? "" : " (" + change->detail + ")"),
                      "change the target table by hand, or keep the source type unchanged");
      }
    }
    return out;
  }

  std::vector<std::string> describe_promotion(const StrategySpec& strategy,
                                              const Schema& source_schema) override {
    PgConnection& db = handle(ErrorCode::SinkUnavailable);
    TargetShape shape = target_shape(db, strategy);
    if (!shape.exists) shape = shape_from_schema(source_schema, strategy);
    std::vector<std::string> out;
    if (strategy.mode == StrategyMode::FullRefresh) {
      out.push_back(fmt::format("-- full_refresh overwrite {}: {}{}", to_string(strategy.overwrite),
                                shape.exchange ? "exchange" : "truncate_insert",
                                shape.overwrite_reason.empty() ? "" : " (" + shape.overwrite_reason + ")"));
      if (shape.exchange && shape.exists && direct_shape_matches(db, source_schema, {})) {
        auto indexes = deferred_indexes(db, qualified(staging_name()));
        out.push_back("-- direct exchange: rows are staged straight into " +
                      qualified(staging_name()) + " (LIKE " + qualified(table_) + " INCLUDING ALL" +
                      (indexes ? " EXCLUDING INDEXES" : "") + "); promotion swaps names");
        if (indexes) {
          out.push_back("-- indexes built after the load:");
          for (const auto& sql : *indexes) out.push_back("--   " + sql);
        }
      }
    }
    out.push_back("BEGIN");
    const bool direct = shape.exchange && shape.exists && direct_shape_matches(db, source_schema, {});
    std::optional<ReconcilePlan> reconcile;
    if (strategy.reconciles())
      reconcile = plan_reconcile(strategy, reconcile_tables(db, source_schema, staging_name()),
                                 reconcile_dialect(), "<run timestamp>");
    for (auto& line : describe_reconcile(strategy, reconcile ? &*reconcile : nullptr))
      out.push_back(std::move(line));
    for (const auto& step :
         strategy_steps(strategy, source_schema, shape, staging_name(), direct)) {
      if (step.kind == StepKind::PairIndexes) continue;
      out.push_back(step.kind == StepKind::RenameIndexes
                        ? "ALTER INDEX <each new index> RENAME TO <the old index's name>"
                        : step.sql);
    }
    if (reconcile) {
      for (const auto& sql : reconcile->apply) out.push_back(sql);
      for (const auto& [name, sql] : reconcile->verify) out.push_back(sql);
    }
    for (const auto& sql : receipt_sql()) out.push_back(sql);
    if (!direct) out.push_back("DROP TABLE " + qualified(staging_name()));
    out.push_back("COMMIT");
    return out;
  }

  bool loads_parts() const override { return true; }

  std::optional<LoadReceipt> latest_receipt() override {
    PgConnection& db = handle(ErrorCode::SinkUnavailable);
    if (!pg::relation_kind(db, schema_, kLoadsTable)) return std::nullopt;
    PgResult r = db.exec_params(
        fmt::format("SELECT \"stream\", \"run_id\", \"base_revision\", \"window\", "
                    "\"new_position\", \"rows\", \"loaded_at\" FROM {} WHERE \"stream\" = $1 "
                    "ORDER BY \"loaded_at\" DESC, \"run_id\" DESC LIMIT 1",
                    qualified(kLoadsTable)),
        {stream_});
    if (r.rows() == 0) return std::nullopt;
    LoadReceipt out;
    out.stream = std::string(r.value(0, 0));
    out.run_id = std::string(r.value(0, 1));
    out.base_revision = std::stoll(std::string(r.value(0, 2)));
    out.window = parse_receipt_json(r.optional_value(0, 3), out.run_id);
    out.new_position = parse_receipt_json(r.optional_value(0, 4), out.run_id);
    out.rows = std::stoll(std::string(r.value(0, 5)));
    out.loaded_at = std::string(r.value(0, 6));
    return out;
  }

  // --- run-time -------------------------------------------------------------------

  std::vector<std::string> cleanup_abandoned(const std::vector<std::string>& live_run_ids) override {
    PgConnection& db = handle(ErrorCode::SinkUnavailable);
    PgResult r = db.exec_params(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND (c.relname LIKE $2 OR "
        "c.relname LIKE $3 OR c.relname LIKE $4) ORDER BY 1",
        {schema_, escape_like(table_ + kStagingInfix) + "%",
         escape_like(table_ + kShadowInfix) + "%", escape_like(table_ + kOldInfix) + "%"});
    std::vector<std::string> removed;
    for (int i = 0; i < r.rows(); ++i) {
      std::string name(r.value(i, 0));
      if (name == staging_name() || name == shadow_name() || name == old_name()) continue;
      if (names_live_run(name, live_run_ids, pg::sanitize_run_id)) continue;
      db.exec("DROP TABLE IF EXISTS " + qualified(name));
      removed.push_back(schema_ + "." + name);
    }
    return removed;
  }

  // A stage() that throws leaves nothing behind: the staging table is dropped here.
  StagedLoad stage(Artifact artifact, const Schema& source_schema) override {
    try {
      return stage_rows(std::move(artifact), source_schema);
    } catch (...) {
      abort(StagedLoad{staging_name(), 0, 0, nullptr});
      throw;
    }
  }

  // Every gate runs as SQL on the staging table (core/connector/sql_gates.hpp judges it).
  std::vector<GateResult> check(const StagedLoad& staged,
                                const std::vector<GateSpec>& gates) override {
    PgConnection& db = handle(ErrorCode::StageFailed);
    db.set_failure_code(ErrorCode::StageFailed);
    Schema staged_columns;  // names only: the runtime's annotation gives the logical types
    for (const auto& c : pg::table_columns(db, schema_, staged.staging_name))
      staged_columns.columns.push_back(Column{c.name, LogicalType::of(TypeId::String), true});
    if (staged_columns.columns.empty()) {
      throw Error(ErrorCode::StageFailed,
                  fmt::format("{}: staging table {} is missing", where_, staged.staging_name));
    }
    SqlGateTarget target{qualified(staged.staging_name), staged_gate_schema(gates, std::move(staged_columns)),
                         where_, "postgres"};
    SqlGateDialect dialect;
    dialect.quote_all_samples = true;  // values shown as quote_literal shows them
    dialect.quote_ident = [](const std::string& c) { return quote_ident(c); };
    dialect.quote_literal = [](const std::string& v) { return pg::quote_literal(v); };
    dialect.comparable = [](const std::string& c, const LogicalType&) { return c; };
    dialect.literal = [](const LogicalType& t, const std::string& v) -> std::string {
      switch (t.id) {
        case TypeId::Int16: case TypeId::Int32: case TypeId::Int64:
        case TypeId::Float32: case TypeId::Float64: case TypeId::Decimal: case TypeId::Bool:
          return v;
        default:
          return pg::quote_literal(v) + "::" + pg::declared_type(t);
      }
    };
    dialect.hash_form = [](const std::string& c, const LogicalType& t) -> std::string {
      auto utc_text = [](const std::string& e) {
        return fmt::format("to_char({0}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || rtrim(rtrim(to_char({0}, '.US'), '0'), '.')", e);
      };
      switch (t.id) {
        case TypeId::Bool:
          return fmt::format("CASE WHEN {0} THEN 'true' WHEN NOT {0} THEN 'false' END", c);
        case TypeId::Float32:
          return fmt::format("CASE WHEN {0} = 'NaN'::real THEN 'NaN' ELSE encode(float4send({0}), 'hex') END", c);
        case TypeId::Float64:
          return fmt::format("CASE WHEN {0} = 'NaN'::float8 THEN 'NaN' ELSE encode(float8send({0}), 'hex') END", c);
        case TypeId::Bytes:
          return fmt::format("encode({}, 'hex')", c);
        case TypeId::Date:
          return fmt::format("to_char({}, 'YYYY-MM-DD')", c);
        case TypeId::Timestamp:
          return t.tz ? utc_text("(" + c + " AT TIME ZONE 'UTC')") + " || 'Z'" : utc_text(c);
        default:
          return c + "::text";  // int, decimal (scale digits), string, time (trailing zeros trimmed), uuid
      }
    };
    dialect.byte_length = [](const std::string& e) { return "octet_length(" + e + ")"; };
    dialect.hash_query = [](const std::string& row, const std::string& stg) {
      return fmt::format(
          "SELECT count(*), coalesce(sum(('x' || substr(md5({}), 1, 16))::bit(64)::bigint), 0)::text FROM {}", row,
          stg);
    };
    struct Runner : SqlGateRunner {
      PgConnection& db;
      explicit Runner(PgConnection& d) : db(d) {}
      std::vector<SqlRow> query(const std::string& sql) override {
        PgResult r = db.exec(sql);
        std::vector<SqlRow> out;
        for (int i = 0; i < r.rows(); ++i) {
          SqlRow row;
          for (int c = 0; c < r.columns(); ++c) row.emplace_back(PQfname(r.get(), c), r.optional_value(i, c));
          out.push_back(std::move(row));
        }
        return out;
      }
    } runner(db);
    // Gates only read: a custom_sql with a data-modifying CTE (WITH d AS (DELETE ...)) must
    // not change anything before promotion. Rolled back when the scope ends.
    PgTransaction read_only(db, "BEGIN TRANSACTION READ ONLY");
    return run_sql_gates(gates, target, dialect, runner, kMaxSamples);
  }

  PromoteResult promote(const StagedLoad& staged, const PromoteRequest& request) override {
    check_staging_name(staged.staging_name);
    // Configuration errors surface with their own code before anything starts.
    render_ddl(request.source_schema, request.changes);
    const bool direct = staged.details.is_object() && staged.details.value("direct", false);
    strategy_steps(request.strategy, request.source_schema,
                   shape_from_schema(request.source_schema, request.strategy), staged.staging_name,
                   direct);
    PgConnection& db = handle(ErrorCode::SinkUnavailable);
    db.set_failure_code(ErrorCode::PromoteFailed);
    PromoteResult result;
    result.atomic = true;
    std::optional<PgTransaction> txn;
    try {
      txn.emplace(db, "BEGIN");
      result.sql.push_back("BEGIN");
      check_latest_receipt(db, request.expected_latest_receipt, result.sql);
      for (const auto& ddl : render_ddl(request.source_schema, request.changes)) {
        db.exec(ddl);
        result.sql.push_back(ddl);
      }
      TargetShape shape = target_shape(db, request.strategy);
      if (!shape.exists) {
        throw Error(ErrorCode::PromoteFailed,
                    fmt::format("{}: the target {} does not exist and no create-table change "
                                "was planned",
                                where_, target_name()));
      }
      int64_t staged_rows = 0;
      if (direct && !shape.exchange) {
        throw Error(ErrorCode::PromoteFailed,
                    fmt::format("{}: {} was staged for an exchange, which is no longer safe ({})",
                                where_, target_name(), shape.overwrite_reason),
                    "re-run: the next run stages for truncate_insert");
      }
      const std::string as_of =
          request.receipt.loaded_at.empty() ? now_iso8601() : request.receipt.loaded_at;
      // Lineage columns are filled on staging with SQL, then the strategy copies them like
      // any staged column (core/connector/reconcile_sql.hpp, plan_lineage).
      Schema schema = request.source_schema;
      std::vector<Column> lineage;
      if (request.strategy.lineage.any()) {
        std::set<std::string> staging_columns;
        for (const auto& c : pg::table_columns(db, schema_, staged.staging_name))
          staging_columns.insert(c.name);
        LineagePlan lp = plan_lineage(
            request.strategy, reconcile_tables(db, request.source_schema, staged.staging_name),
            staging_columns, reconcile_dialect(),
            request.receipt.run_id.empty() ? run_id_ : request.receipt.run_id,
            reconcile_dialect().timestamp_literal(as_of));
        for (const auto& sql : lp.sql) {
          db.exec(sql);
          result.sql.push_back(sql);
        }
        lineage = lp.columns;
        for (const auto& c : lineage) schema.columns.push_back(c);
      }
      std::vector<std::pair<std::string, std::string>> index_renames;
      auto run_steps = [&] {
        for (const auto& step : strategy_steps(request.strategy, schema, shape,
                                               staged.staging_name, direct)) {
          switch (step.kind) {
            case StepKind::PairIndexes:
              index_renames = pair_indexes(db, step.sql);
              continue;
            case StepKind::RenameIndexes:
              for (const auto& [from, to] : index_renames) {
                std::string sql = fmt::format("ALTER INDEX {} RENAME TO {}", qualified(from),
                                              quote_ident(to));
                db.exec(sql);
                result.sql.push_back(sql);
              }
              continue;
            case StepKind::Exec:
              db.exec(step.sql);
              break;
            case StepKind::CountPrevious:
              result.deleted = db.query_int64(step.sql);
              break;
            case StepKind::CountStaged:
              staged_rows = db.query_int64(step.sql);
              break;
            case StepKind::CountInserted:
              // The direct-exchange table holds exactly what its COPY loaded (the server's
              // own count, checked in stage()): no second scan of it.
              result.inserted = direct ? staged.rows : db.query_int64(step.sql);
              break;
            case StepKind::Delete:
              result.deleted += db.exec(step.sql).affected();
              break;
            case StepKind::RowsOutsideSlice:
              if (int64_t n = db.query_int64(step.sql); n > 0) {
                throw Error(ErrorCode::GateFailed,
                            fmt::format("{}: {} staged rows are outside the replace slice `where: "
                                        "{}`; loading them would put rows outside the slice the "
                                        "next run replaces",
                                        where_, n, request.strategy.raw.value("where", "")),
                            "make the source read only the slice, or widen `where`");
              }
              break;
            case StepKind::PartitionCount: {
              const int64_t max = max_partitions(request.strategy);
              if (int64_t n = db.query_int64(step.sql); n > max) {
                throw Error(ErrorCode::GateFailed,
                            fmt::format("{}: the staged rows touch {} partitions of {}, more than "
                                        "max_partitions_per_run ({})",
                                        where_, n, target_name(), max),
                            "raise sink.strategy.max_partitions_per_run if this is intended");
              }
              break;
            }
            case StepKind::CountUpdated:
              result.updated = db.query_int64(step.sql);
              result.inserted = staged_rows - result.updated;
              break;
            case StepKind::Insert:
              result.inserted += db.exec(step.sql).affected();
              break;
          }
          result.sql.push_back(step.sql);
        }
      };
      if (request.strategy.reconciles()) {
        // snapshot_diff, scd2, merge + key_snapshot (core/connector/reconcile_sql.hpp):
        // counts and delete guards before any row changes, in this transaction.
        ReconcileTables tables = reconcile_tables(db, request.source_schema, staged.staging_name);
        tables.copied = lineage;
        ReconcilePlan plan = plan_reconcile(request.strategy, tables, reconcile_dialect(),
                                            reconcile_dialect().timestamp_literal(as_of));
        struct Runner : ReconcileRunner {
          PgConnection& db;
          explicit Runner(PgConnection& d) : db(d) {}
          void exec(const std::string& sql) override { db.exec(sql); }
          int64_t count(const std::string& sql) override { return db.query_int64(sql); }
        } runner(db);
        std::function<void()> merge;
        if (request.strategy.mode == StrategyMode::Merge) merge = run_steps;
        run_reconcile(plan, request.strategy, runner, merge, where_, target_name(), as_of, result);
      } else {
        run_steps();
      }
      write_receipt(db, request.receipt, result.sql);
      // State in this database commits with the data (pg_state_store.hpp).
      if (request.state_commit)
        result.state_committed =
            pg::commit_state_with_data(db, connection_, *request.state_commit, result.sql);
      if (!direct) {  // a direct exchange's staging table has become the target
        std::string drop = "DROP TABLE " + qualified(staged.staging_name);
        db.exec(drop);
        result.sql.push_back(drop);
      }
      failpoint("inside_promote");
      // An interrupt that arrived during the promotion rolls it back whole.
      check_interrupt("during the promotion (rolled back)");
      txn->commit();
      result.sql.push_back("COMMIT");
      return result;
    } catch (const std::exception& e) {
      if (txn) txn->rollback();
      const auto* err = dynamic_cast<const Error*>(&e);
      if (err && (err->code() == ErrorCode::FailpointTriggered ||
                  err->code() == ErrorCode::GateFailed || err->code() == ErrorCode::StateConflict || err->code() == ErrorCode::Interrupted))
        throw;
      // A key the target already holds is the user's to resolve: its own code and hint.
      const ErrorCode code = err && err->code() == ErrorCode::KeyDuplicate
                                 ? ErrorCode::KeyDuplicate
                                 : ErrorCode::PromoteFailed;
      throw Error(
          code,
          fmt::format("{}: promotion into {} failed and was rolled back (target, receipt and "
                      "staging unchanged): [{}] {}",
                      where_, target_name(),
                      err ? std::string(err->code_name()) : std::string("INTERNAL"), e.what()),
          err ? err->hint() : std::string());
    }
  }

  void abort(const StagedLoad& staged) noexcept override {
    // Best effort by contract: what survives is removed by the next cleanup_abandoned().
    try {
      if (staged.staging_name.find(kStagingInfix) == std::string::npos) return;
      PgConnection& db = handle(ErrorCode::SinkUnavailable);
      db.copy_in_abort();
      if (PQtransactionStatus(db.get()) == PQTRANS_INERROR ||
          PQtransactionStatus(db.get()) == PQTRANS_INTRANS)
        PQclear(PQexec(db.get(), "ROLLBACK"));
      db.exec("DROP TABLE IF EXISTS " + qualified(staged.staging_name));
    } catch (const std::exception& e) {
      warn_staging_left(diagnostics_, where_, staged.staging_name, e);
    }
  }

 private:
  PgConnection& handle(ErrorCode code) {
    if (!conn_) conn_ = PgConnection::connect(connection_, ErrorCode::SinkUnavailable, where_);
    conn_->set_failure_code(code);
    return *conn_;
  }

  void check_schema(PgConnection& db) {
    if (checked_schema_) return;
    if (!db.query_value("SELECT 1 FROM pg_namespace WHERE nspname = $1", {schema_})) {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: schema '{}' does not exist on {}", where_, schema_, db.target()),
                  fmt::format("create it (CREATE SCHEMA {}) or set the sink's `schema` option",
                              quote_ident(schema_)));
    }
    checked_schema_ = true;
  }

  [[noreturn]] void missing_definition(const SchemaChange& change) const {
    throw Error(ErrorCode::Internal,
                fmt::format("{}: {} of column '{}' without a column definition", where_,
                            to_string(change.kind), change.column));
  }

  StagedLoad stage_rows(Artifact artifact, const Schema& source_schema) {
    if (source_schema.columns.empty()) {
      throw Error(ErrorCode::Internal, fmt::format("{}: nothing to stage: no columns", where_));
    }
    BatchReader* reader = nullptr;
    ByteReader* copy_bytes = nullptr;
    InMemoryRows* in_memory = nullptr;
    WireFormat format = WireFormat::RecordBatch;
    std::vector<std::string> wire_types;
    std::vector<std::unique_ptr<ByteReader>>* parts = nullptr;
    if (auto* rows = std::get_if<StreamingRows>(&artifact)) {
      format = rows->format;
      if (format == WireFormat::RecordBatch) reader = rows->batches.get();
      if (format == WireFormat::PgCopyText || format == WireFormat::PgCopyBinary) {
        copy_bytes = rows->bytes.get();
        if (!copy_bytes && !rows->parts.empty()) parts = &rows->parts;
      }
      wire_types = rows->wire_types;
    } else {
      in_memory = std::get_if<InMemoryRows>(&artifact);
    }
    const InternalQuery* internal = std::get_if<InternalQuery>(&artifact);
    const bool binary = format == WireFormat::PgCopyBinary;
    if ((!reader && !in_memory && !copy_bytes && !parts && !internal) ||
        (binary && wire_types.size() != source_schema.columns.size())) {
      throw Error(ErrorCode::Internal,
                  fmt::format("{} cannot stage {}: it accepts streaming_rows/pg_copy_binary (with "
                              "a type per column), pg_copy_text and record_batch",
                              where_, spec_of(artifact).to_string()));
    }
    PgConnection& db = handle(ErrorCode::StageFailed);
    check_schema(db);
    const std::string stg = staging_name();
    db.exec("DROP TABLE IF EXISTS " + qualified(stg));
    // Direct exchange: the staging table is the future target (module comment).
    bool direct = false;
    if (strategy_ && strategy_->mode == StrategyMode::FullRefresh) {
      TargetShape shape = target_shape(db, *strategy_);
      direct = shape.exists && shape.exchange && direct_shape_matches(db, source_schema, wire_types);
    }
    // A direct exchange builds the target's indexes after the load when it can
    // (deferred_indexes): the table is created without them.
    std::optional<std::vector<std::string>> index_sql;
    if (direct) {
      index_sql = deferred_indexes(db, qualified(stg));
      db.exec(fmt::format("CREATE TABLE {} (LIKE {} INCLUDING ALL{})", qualified(stg),
                          qualified(table_), index_sql ? " EXCLUDING INDEXES" : ""));
    } else if (binary) {
      std::vector<std::string> defs;
      for (size_t i = 0; i < wire_types.size(); ++i)
        defs.push_back(quote_ident(source_schema.columns[i].name) + " " + wire_types[i]);
      db.exec(fmt::format("CREATE UNLOGGED TABLE {} ({})", qualified(stg), fmt::join(defs, ", ")));
    } else {
      db.exec(create_table_sql(qualified(stg), source_schema, false, true));
    }
    const std::string copy_sql = fmt::format("COPY {} ({}) FROM STDIN{}", qualified(stg),
                                             join_quoted(source_schema.names()),
                                             binary ? " (FORMAT binary)" : "");
    StagedLoad staged;
    staged.staging_name = stg;
    // Every way of loading ends here: the deferred indexes, statistics, what was done.
    auto loaded = [&](nlohmann::json details) {
      build_indexes(db, index_sql);
      db.exec("ANALYZE " + qualified(stg));
      details["target"] = db.target();
      details["schema"] = schema_;
      details["table"] = stg;
      details["direct"] = direct;
      if (index_sql) details["indexes_built_after_load"] = index_sql->size();
      staged.details = std::move(details);
      return staged;
    };
    if (internal) {  // INSERT ... SELECT on the server: no row passes through dpone
      auto done = pg::stage_internal_query(db, *internal, schema_, stg, source_schema);
      staged.rows = done.rows;
      if (on_progress_) on_progress_(staged.rows, 0);
      return loaded({{"format", "internal_query"},
                     {"rows_through_client", 0},
                     {"snapshot", !internal->snapshot.empty()},
                     {"sql", done.sql}});
    }
    if (parts) {
      load_parts(*parts, copy_sql, binary, staged);
      return loaded({{"format", to_string(format)}, {"parts", parts->size()}});
    }
    db.copy_in_start(copy_sql);
    try {
      if (copy_bytes) {
        pass_through(*copy_bytes, binary, staged);
      } else {
        write_batches(reader, in_memory, source_schema, staged);
      }
    } catch (...) {
      db.copy_in_abort();
      throw;
    }
    const int64_t copied = db.copy_in_end();
    if (copied != staged.rows) {
      throw Error(ErrorCode::StageFailed,
                  fmt::format("{}: COPY into {} loaded {} rows, but dpone sent {}", where_,
                              qualified(stg), copied, staged.rows),
                  "this is a bug in dpone's COPY stream: please report it with the run record");
    }
    return loaded({{"format", to_string(format)}});
  }

  void write_batches(BatchReader* reader, InMemoryRows* in_memory, const Schema& source_schema,
                     StagedLoad& staged) {
    PgConnection& db = *conn_;
    const size_t ncols = source_schema.columns.size();
    std::string buffer;
    auto write = [&](const RecordBatch& batch) {
      if (batch.num_columns() != ncols) {
        throw Error(ErrorCode::Internal, fmt::format("{}: a batch has {} columns, the schema {}",
                                                     where_, batch.num_columns(), ncols));
      }
      buffer.clear();
      buffer.reserve(
          std::min(batch.byte_size() + batch.num_rows() * ncols * 2 + 64, kCopyChunk * 2));
      for (size_t r = 0; r < batch.num_rows(); ++r) {
        for (size_t c = 0; c < ncols; ++c) {
          if (c) buffer.push_back('\t');
          if (batch.is_null(r, c)) {
            buffer.append("\\N");
          } else {
            pg::append_copy_cell(buffer, source_schema.columns[c].type, batch.cell(r, c));
          }
        }
        buffer.push_back('\n');
        if (buffer.size() >= kCopyChunk) {
          db.copy_in_put(buffer);
          buffer.clear();
        }
      }
      db.copy_in_put(buffer);
      staged.rows += static_cast<int64_t>(batch.num_rows());
      staged.bytes += static_cast<int64_t>(batch.byte_size());
      if (on_progress_) on_progress_(staged.rows, staged.bytes);
    };
    if (reader) {
      while (auto batch = reader->next()) write(*batch);
    } else {
      for (const auto& batch : in_memory->batches) write(batch);
    }
  }

  // Pass-through: the source's COPY bytes go to COPY FROM STDIN as they come, in reads
  // of kCopyChunk bytes, counted on the way (CopyRowCounter) for progress and for the
  // check against the server's own count. staged.bytes counts the COPY bytes. on_progress
  // after the first read and then every kProgressRows rows.
  void pass_through(ByteReader& in, bool binary, StagedLoad& staged) {
    constexpr int64_t kProgressRows = 65536;
    PgConnection& db = *conn_;
    CopyRowCounter counter(binary);
    std::string buffer(kCopyChunk, '\0');
    int64_t next_report = 0;
    while (size_t n = in.read(buffer.data(), buffer.size())) {
      std::string_view chunk(buffer.data(), n);
      counter.feed(chunk);
      staged.rows = counter.rows();
      staged.bytes += static_cast<int64_t>(n);
      db.copy_in_put(chunk);
      if (on_progress_ && staged.rows >= next_report) {
        on_progress_(staged.rows, staged.bytes);
        next_report = staged.rows + kProgressRows;
      }
    }
    if (binary && staged.bytes == 0) {
      // An empty window: a binary COPY still needs its header and end marker.
      db.copy_in_put(kEmptyBinaryCopy);
      return;
    }
    counter.finish(where_);
    staged.rows = counter.rows();
    if (on_progress_) on_progress_(staged.rows, staged.bytes);
  }

  // Parallel parts: one connection and one COPY per part, each on its own thread; this
  // thread reports progress (and so runs the during_stage failpoint) every 200 ms. The
  // first failure stops the others (their COPYs are aborted) and is rethrown here; the
  // staging table is then dropped by stage(). Each part's rows are counted and checked
  // against its server's COPY count.
  void load_parts(std::vector<std::unique_ptr<ByteReader>>& parts, const std::string& copy_sql,
                  bool binary, StagedLoad& staged) {
    struct Worker {
      std::unique_ptr<PgConnection> conn;
      std::atomic<int64_t> rows{0};
      std::atomic<int64_t> bytes{0};
      std::exception_ptr error;
      std::thread thread;
    };
    std::vector<std::unique_ptr<Worker>> workers;
    for (size_t i = 0; i < parts.size(); ++i) {
      auto w = std::make_unique<Worker>();
      w->conn = PgConnection::connect(connection_, ErrorCode::SinkUnavailable, where_);
      w->conn->set_failure_code(ErrorCode::StageFailed);
      workers.push_back(std::move(w));
    }
    std::atomic<bool> stop{false};
    std::atomic<size_t> running{parts.size()};
    for (size_t i = 0; i < parts.size(); ++i) {
      Worker& w = *workers[i];
      ByteReader& in = *parts[i];
      w.thread = std::thread([&, binary] {
        try {
          PgConnection& db = *w.conn;
          db.copy_in_start(copy_sql);
          CopyRowCounter counter(binary);
          std::string buffer(kCopyChunk, '\0');
          int64_t bytes = 0;
          while (size_t n = in.read(buffer.data(), buffer.size())) {
            if (stop) throw Error(ErrorCode::StageFailed, "stopped: another part failed");
            std::string_view chunk(buffer.data(), n);
            counter.feed(chunk);
            db.copy_in_put(chunk);
            bytes += static_cast<int64_t>(n);
            w.rows = counter.rows();
            w.bytes = bytes;
          }
          if (binary && bytes == 0) {
            db.copy_in_put(kEmptyBinaryCopy);
          } else {
            counter.finish(where_);
          }
          const int64_t loaded = db.copy_in_end();
          if (loaded != counter.rows()) {
            throw Error(ErrorCode::StageFailed,
                        fmt::format("{}: a parallel COPY loaded {} rows, but dpone sent {}", where_,
                                    loaded, counter.rows()));
          }
          w.rows = loaded;
        } catch (...) {
          w.error = std::current_exception();
          w.conn->copy_in_abort();
          stop = true;
        }
        --running;
      });
    }
    auto total = [&] {
      int64_t rows = 0, bytes = 0;
      for (const auto& w : workers) {
        rows += w->rows;
        bytes += w->bytes;
      }
      staged.rows = rows;
      staged.bytes = bytes;
    };
    std::exception_ptr first;
    try {
      while (running > 0 && !stop) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        total();
        if (on_progress_) on_progress_(staged.rows, staged.bytes);
      }
    } catch (...) {
      first = std::current_exception();
      stop = true;
    }
    for (auto& w : workers) w->thread.join();
    for (auto& w : workers) {
      if (!first && w->error) first = w->error;
    }
    if (first) std::rethrow_exception(first);
    total();
    if (on_progress_) on_progress_(staged.rows, staged.bytes);
  }

  // --- names ----------------------------------------------------------------------

  std::string target_name() const { return schema_ + "." + table_; }
  std::string qualified(const std::string& name) const {
    return quote_ident(schema_) + "." + quote_ident(name);
  }
  std::string staging_name() const { return table_ + kStagingInfix + pg::sanitize_run_id(run_id_); }
  std::string shadow_name() const { return table_ + kShadowInfix + pg::sanitize_run_id(run_id_); }
  std::string old_name() const { return table_ + kOldInfix + pg::sanitize_run_id(run_id_); }

  void check_staging_name(const std::string& name) const {
    if (name.find(kStagingInfix) == std::string::npos) {
      throw Error(ErrorCode::Internal,
                  fmt::format("{}: '{}' is not a dpone staging table", where_, name));
    }
  }

  static std::string shorten(std::string_view v) {
    constexpr size_t kMax = 80;
    if (v.size() <= kMax) return std::string(v);
    return std::string(v.substr(0, kMax)) + "...";
  }

  // --- catalog --------------------------------------------------------------------

  // Is there a PRIMARY KEY or a full (non-partial, non-expression) UNIQUE index on
  // exactly `keys`?
  bool key_is_unique(PgConnection& db, const std::vector<std::string>& keys) {
    if (keys.empty()) return false;
    PgResult r = db.exec_params(
        "SELECT array_to_string(array_agg(a.attname::text ORDER BY a.attname), chr(1)) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN LATERAL unnest(i.indkey) AS k(attnum) "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        "WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL "
        "AND i.indexprs IS NULL AND i.indimmediate GROUP BY i.indexrelid",
        {schema_, table_});
    std::vector<std::string> wanted = keys;
    std::sort(wanted.begin(), wanted.end());
    std::string want;
    for (size_t i = 0; i < wanted.size(); ++i) {
      if (i) want.push_back('\1');
      want += wanted[i];
    }
    for (int i = 0; i < r.rows(); ++i)
      if (r.value(i, 0) == want) return true;
    return false;
  }

  TargetShape target_shape(PgConnection& db, const StrategySpec& strategy) {
    TargetShape shape;
    auto kind = pg::relation_kind(db, schema_, table_);
    shape.exists = kind.has_value();
    if (!shape.exists) return shape;
    shape.primary_key = pg::primary_key(db, schema_, table_);
    if (strategy.mode == StrategyMode::PartitionReplace) {
      PgResult pk = db.exec_params(
          "SELECT a.attname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
          "JOIN pg_namespace n ON n.oid = c.relnamespace "
          "CROSS JOIN LATERAL unnest(p.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord) "
          "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
          "WHERE n.nspname = $1 AND c.relname = $2 ORDER BY k.ord",
          {schema_, table_});
      for (int i = 0; i < pk.rows(); ++i) shape.partition_key.emplace_back(pk.value(i, 0));
    }
    if (strategy.mode == StrategyMode::Merge)
      shape.key_unique = key_is_unique(db, strategy.unique_key);
    if (strategy.mode == StrategyMode::FullRefresh) {
      if (strategy.overwrite == OverwriteMethod::Auto) {
        auto blockers = exchange_blockers(db);
        shape.exchange = blockers.empty();
        shape.overwrite_reason =
            blockers.empty() ? "nothing depends on the table's identity"
                             : fmt::format("{} would not survive an exchange", fmt::join(blockers, ", "));
      } else {
        shape.exchange = strategy.overwrite == OverwriteMethod::Exchange;
      }
    }
    if (shape.exchange) {
      shape.owner = db.query_value(
                          "SELECT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
                          "ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                          {schema_, table_})
                        .value_or("");
      shape.comment = db.query_value(
          "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c JOIN pg_namespace n ON "
          "n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
          {schema_, table_});
      // The ACL without the owner's own entry (the owner keeps all rights implicitly).
      PgResult acl = db.exec_params(
          "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid("
          "a.grantee)) END, a.privilege_type, a.is_grantable "
          "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
          "CROSS JOIN LATERAL aclexplode(c.relacl) AS a "
          "WHERE n.nspname = $1 AND c.relname = $2 AND a.grantee <> c.relowner "
          "ORDER BY 1, 2",
          {schema_, table_});
      for (int i = 0; i < acl.rows(); ++i) {
        shape.grants.push_back(fmt::format("GRANT {} ON {} TO {}{}", acl.value(i, 1),
                                           qualified(table_), acl.value(i, 0),
                                           acl.value(i, 2) == "t" ? " WITH GRANT OPTION" : ""));
      }
    }
    return shape;
  }

  // What would not survive renaming a new table into the target's place (README.md
  // "full_refresh: auto"): each entry names the kind of dependency found.
  std::vector<std::string> exchange_blockers(PgConnection& db) {
    PgResult r = db.exec_params(
        "SELECT c.relkind::text, "
        "(SELECT count(*) FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid "
        "  WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = c.oid AND w.ev_class <> c.oid), "
        "(SELECT count(*) FROM pg_constraint f WHERE f.contype = 'f' AND (f.conrelid = c.oid OR "
        "  f.confrelid = c.oid)), "
        "(SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal), "
        "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) + c.relrowsecurity::int, "
        "(SELECT count(*) FROM pg_publication_rel p WHERE p.prrelid = c.oid), "
        "(SELECT count(*) FROM pg_depend d JOIN pg_class q ON q.oid = d.objid "
        "  WHERE d.classid = 'pg_class'::regclass AND d.refobjid = c.oid AND q.relkind = 'S'), "
        "(SELECT count(*) FROM pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid), "
        "(SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attacl IS NOT NULL), "
        "(c.reloptions IS NOT NULL OR c.reltablespace <> 0 OR c.relreplident <> 'd')::int "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2",
        {schema_, table_});
    std::vector<std::string> out;
    if (r.rows() == 0) return out;
    if (r.value(0, 0) != "r") out.push_back("a partitioned or special table");
    static const char* kinds[] = {"views or rules", "foreign keys", "triggers",
                                  "row-level security", "publications",
                                  "owned sequences (serial or identity)", "inheritance",
                                  "column privileges",
                                  "storage parameters, tablespace or replica identity"};
    for (int i = 0; i < 9; ++i) {
      if (r.value(0, i + 1) != "0") out.push_back(kinds[i]);
    }
    return out;
  }

  // Indexes after the load, in pg_restore's order: a COPY into a table without indexes
  // followed by one sorted build per index is about 30% faster than maintaining every
  // index row by row (measured: bench/pg_to_pg, and 2M rows with a bigint primary key:
  // 7.35 s -> 5.21 s). Returns the statements that give `stg` (qualified) the target's
  // indexes: constraint-backed ones (PRIMARY KEY, UNIQUE, EXCLUDE) as constraints, the
  // others from pg_get_indexdef with the name left to the server (promote restores the
  // target's index names after the swap, as for every exchange). nullopt when an index
  // has something a rebuilt one would lose (a comment, CLUSTER or replica-identity mark,
  // an invalid build) or a definition of an unexpected shape: the caller then creates
  // the staging table with its indexes (LIKE ... INCLUDING ALL), as before.
  std::optional<std::vector<std::string>> deferred_indexes(PgConnection& db,
                                                           const std::string& stg) {
    PgResult r = db.exec_params(
        "SELECT (con.oid IS NOT NULL)::text, coalesce(pg_get_constraintdef(con.oid), ''), "
        "pg_get_indexdef(i.indexrelid), 'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' "
        "ELSE '' END || 'INDEX ' || quote_ident(ic.relname) || ' ON ' || quote_ident(n.nspname) "
        "|| '.' || quote_ident(c.relname) || ' USING ', "
        "(obj_description(i.indexrelid, 'pg_class') IS NULL AND (con.oid IS NULL OR "
        "obj_description(con.oid, 'pg_constraint') IS NULL) AND i.indisvalid AND "
        "NOT i.indisclustered AND NOT i.indisreplident)::text "
        "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
        "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = c.oid "
        "AND con.contype IN ('p', 'u', 'x') "
        "WHERE i.indrelid = $1::regclass ORDER BY i.indexrelid",
        {qualified(table_)});
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) {
      if (r.value(i, 4) != "true") return std::nullopt;
      if (r.value(i, 0) == "true") {
        out.push_back(fmt::format("ALTER TABLE {} ADD {}", stg, r.value(i, 1)));
        continue;
      }
      std::string_view def = r.value(i, 2), prefix = r.value(i, 3);
      if (def.substr(0, prefix.size()) != prefix) return std::nullopt;
      out.push_back(fmt::format("CREATE {}INDEX ON {} USING {}",
                                def.substr(0, 14) == "CREATE UNIQUE " ? "UNIQUE " : "", stg,
                                def.substr(prefix.size())));
    }
    return out;
  }

  void build_indexes(PgConnection& db, const std::optional<std::vector<std::string>>& sql) {
    if (!sql) return;
    for (const auto& s : *sql) db.exec(s);
  }

  // A direct exchange needs the target to have exactly the stream's columns with the
  // same logical types (no evolution to apply) and, for binary COPY, the same server
  // types as the source sends.
  bool direct_shape_matches(PgConnection& db, const Schema& source_schema,
                            const std::vector<std::string>& wire_types) {
    auto cols = pg::table_columns(db, schema_, table_);
    if (cols.size() != source_schema.columns.size()) return false;
    for (size_t i = 0; i < source_schema.columns.size(); ++i) {
      const Column& want = source_schema.columns[i];
      auto it = std::find_if(cols.begin(), cols.end(),
                             [&](const pg::CatalogColumn& c) { return c.name == want.name; });
      if (it == cols.end()) return false;
      auto mapped = pg::map_pg_type(it->formatted, it->category);
      if (!mapped.known || mapped.as_json || !(mapped.type == want.type)) return false;
      if (!wire_types.empty() && wire_types[i] != it->formatted) return false;
    }
    return true;
  }

  // Pairs the indexes of `fresh` (qualified name) with the target's by definition
  // (primary/unique flags and everything after USING), in creation order; returns
  // (fresh index, old index name) for the renames after the old table is dropped.
  std::vector<std::pair<std::string, std::string>> pair_indexes(PgConnection& db,
                                                                const std::string& fresh) {
    const std::string sql =
        "SELECT ic.relname, i.indisprimary::text || i.indisunique::text || "
        "substr(pg_get_indexdef(i.indexrelid), strpos(pg_get_indexdef(i.indexrelid), ' USING ')) "
        "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
        "WHERE i.indrelid = $1::regclass ORDER BY i.indexrelid";
    PgResult fresh_ix = db.exec_params(sql, {fresh});
    PgResult old_ix = db.exec_params(sql, {qualified(table_)});
    std::vector<std::pair<std::string, std::string>> out;
    std::vector<bool> used(static_cast<size_t>(old_ix.rows()), false);
    for (int i = 0; i < fresh_ix.rows(); ++i) {
      for (int j = 0; j < old_ix.rows(); ++j) {
        if (used[static_cast<size_t>(j)] || old_ix.value(j, 1) != fresh_ix.value(i, 1)) continue;
        used[static_cast<size_t>(j)] = true;
        if (fresh_ix.value(i, 0) != old_ix.value(j, 0))
          out.emplace_back(std::string(fresh_ix.value(i, 0)), std::string(old_ix.value(j, 0)));
        break;
      }
    }
    return out;
  }

  TargetShape shape_from_schema(const Schema& schema, const StrategySpec& strategy) const {
    TargetShape shape;
    shape.exists = true;
    shape.from_catalog = false;
    shape.exchange = strategy.mode == StrategyMode::FullRefresh &&
                     strategy.overwrite != OverwriteMethod::TruncateInsert;
    shape.primary_key = schema.primary_key;
    if (strategy.mode == StrategyMode::Merge) {
      std::set<std::string> pk(schema.primary_key.begin(), schema.primary_key.end());
      std::set<std::string> keys(strategy.unique_key.begin(), strategy.unique_key.end());
      shape.key_unique = !keys.empty() && pk == keys;
    }
    return shape;
  }

  // --- SQL ------------------------------------------------------------------------

  std::string create_table_sql(const std::string& name, const Schema& schema, bool constraints,
                               bool unlogged) const {
    std::vector<std::string> defs;
    for (const auto& c : schema.columns) {
      std::string def = quote_ident(c.name) + " " + pg::declared_type(c.type);
      if (constraints && !c.nullable) def += " NOT NULL";
      defs.push_back(std::move(def));
    }
    if (constraints && !schema.primary_key.empty())
      defs.push_back("PRIMARY KEY (" + join_quoted(schema.primary_key) + ")");
    return fmt::format("CREATE {}TABLE {} ({})", unlogged ? "UNLOGGED " : "", name,
                       fmt::join(defs, ", "));
  }

  void check_keys(const std::vector<std::string>& keys, const Schema& source_schema,
                  const char* what) const {
    if (keys.empty()) {
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("{}: {} needs `unique_key` (the columns that identify a row)", where_, what));
    }
    for (const auto& k : keys) {
      if (source_schema.find(k) < 0) {
        throw Error(
            ErrorCode::ConfigBadValue,
            fmt::format("{}: unique_key column '{}' is not a column of the stream", where_, k),
            fmt::format("columns: {}", fmt::join(source_schema.names(), ", ")));
      }
    }
  }

  // direct: `staging` is a direct-exchange staging table (full_refresh): it is swapped in.
  std::vector<Step> strategy_steps(const StrategySpec& strategy, const Schema& source_schema,
                                   const TargetShape& shape, const std::string& staging,
                                   bool direct = false) const {
    const std::string target = qualified(table_);
    const std::string stg = qualified(staging);
    const std::string cols = join_quoted(source_schema.names());
    const std::string insert_all =
        fmt::format("INSERT INTO {} ({}) SELECT {} FROM {}", target, cols, cols, stg);
    std::vector<Step> steps;
    switch (strategy.mode) {
      case StrategyMode::FullRefresh:
        steps.push_back({StepKind::CountPrevious, "SELECT count(*) FROM " + target});
        if (!shape.exchange) {
          steps.push_back({StepKind::Exec, "TRUNCATE TABLE " + target});
          steps.push_back({StepKind::Insert, insert_all});
        } else {
          const std::string shadow = direct ? stg : qualified(shadow_name());
          if (direct) {
            steps.push_back({StepKind::CountInserted, "SELECT count(*) FROM " + shadow});
          } else {
            steps.push_back({StepKind::Exec, fmt::format("CREATE TABLE {} (LIKE {} INCLUDING ALL)",
                                                         shadow, target)});
            steps.push_back({StepKind::Insert, fmt::format("INSERT INTO {} ({}) SELECT {} FROM {}",
                                                           shadow, cols, cols, stg)});
          }
          steps.push_back({StepKind::PairIndexes, shadow});
          steps.push_back({StepKind::Exec, fmt::format("ALTER TABLE {} RENAME TO {}", target,
                                                       quote_ident(old_name()))});
          steps.push_back({StepKind::Exec, fmt::format("ALTER TABLE {} RENAME TO {}", shadow,
                                                       quote_ident(table_))});
          if (!shape.owner.empty()) {
            steps.push_back({StepKind::Exec, fmt::format("ALTER TABLE {} OWNER TO {}", target,
                                                         quote_ident(shape.owner))});
          }
          for (const auto& g : shape.grants) steps.push_back({StepKind::Exec, g});
          if (shape.comment) {
            steps.push_back({StepKind::Exec, fmt::format("COMMENT ON TABLE {} IS {}", target,
                                                         pg::quote_literal(*shape.comment))});
          }
          steps.push_back({StepKind::Exec, "DROP TABLE " + qualified(old_name())});
          steps.push_back({StepKind::RenameIndexes, ""});
        }
        break;
      case StrategyMode::Append:
        if (strategy.only_new_rows) {
          check_keys(strategy.unique_key, source_schema, "append with only_new_rows");
          std::vector<std::string> match;
          for (const auto& k : strategy.unique_key)
            match.push_back(
                fmt::format("t.{} IS NOT DISTINCT FROM s.{}", quote_ident(k), quote_ident(k)));
          steps.push_back(
              {StepKind::Insert,
               fmt::format("INSERT INTO {} ({}) SELECT {} FROM {} AS s WHERE NOT EXISTS "
                           "(SELECT 1 FROM {} AS t WHERE {})",
                           target, cols, join_quoted(source_schema.names(), "s."), stg, target,
                           fmt::join(match, " AND "))});
        } else {
          steps.push_back({StepKind::Insert, insert_all});
        }
        break;
      case StrategyMode::Merge: {
        check_keys(strategy.unique_key, source_schema, "merge");
        std::vector<std::string> match;
        for (const auto& k : strategy.unique_key)
          match.push_back(fmt::format("t.{} = s.{}", quote_ident(k), quote_ident(k)));
        const std::string on = fmt::format("{}", fmt::join(match, " AND "));
        steps.push_back({StepKind::CountStaged, "SELECT count(*) FROM " + stg});
        steps.push_back(
            {StepKind::CountUpdated,
             fmt::format("SELECT count(*) FROM {} AS s WHERE EXISTS (SELECT 1 FROM {} AS t "
                         "WHERE {})",
                         stg, target, on)});
        if (shape.key_unique) {
          std::vector<std::string> sets;
          for (const auto& c : source_schema.columns) {
            if (std::find(strategy.unique_key.begin(), strategy.unique_key.end(), c.name) !=
                strategy.unique_key.end())
              continue;
            sets.push_back(
                fmt::format("{} = EXCLUDED.{}", quote_ident(c.name), quote_ident(c.name)));
          }
          std::string action = sets.empty()
                                   ? std::string("DO NOTHING")
                                   : fmt::format("DO UPDATE SET {}", fmt::join(sets, ", "));
          steps.push_back({StepKind::Exec, fmt::format("{} ON CONFLICT ({}) {}", insert_all,
                                                       join_quoted(strategy.unique_key), action)});
        } else {
          steps.push_back({StepKind::Exec, fmt::format("DELETE FROM {} AS t USING {} AS s WHERE {}",
                                                       target, stg, on)});
          steps.push_back({StepKind::Exec, insert_all});
        }
        break;
      }
      case StrategyMode::Replace: {
        const std::string pred = strategy.raw.value("where", "");
        if (pred.empty()) {
          throw Error(ErrorCode::ConfigMissingKey,
                      fmt::format("{}: replace needs `where`: the SQL predicate of the slice of {} "
                                  "this load replaces",
                                  where_, target_name()),
                      "e.g. where: \"day = '2026-11-01'\"");
        }
        steps.push_back({StepKind::RowsOutsideSlice,
                         fmt::format("SELECT count(*) FROM {} WHERE NOT coalesce(({}), false)", stg,
                                     pred)});
        steps.push_back({StepKind::Delete, fmt::format("DELETE FROM {} WHERE {}", target, pred)});
        steps.push_back({StepKind::Insert, insert_all});
        break;
      }
      case StrategyMode::PartitionReplace: {
        std::vector<std::string> cols = partition_columns(strategy, shape);
        for (const auto& c : cols) {
          if (shape.from_catalog && source_schema.find(c) < 0) {
            throw Error(ErrorCode::ConfigBadValue,
                        fmt::format("{}: partition column '{}' is not a column of the stream",
                                    where_, c));
          }
        }
        std::vector<std::string> match;
        for (const auto& c : cols)
          match.push_back(
              fmt::format("t.{} IS NOT DISTINCT FROM p.{}", quote_ident(c), quote_ident(c)));
        const std::string parts =
            fmt::format("(SELECT DISTINCT {} FROM {}) AS p", join_quoted(cols), stg);
        steps.push_back({StepKind::PartitionCount, "SELECT count(*) FROM " + parts});
        steps.push_back({StepKind::Delete, fmt::format("DELETE FROM {} AS t USING {} WHERE {}",
                                                       target, parts, fmt::join(match, " AND "))});
        steps.push_back({StepKind::Insert, insert_all});
        break;
      }
      case StrategyMode::SnapshotDiff:
      case StrategyMode::Scd2:
        // All their SQL comes from plan_reconcile (core/connector/reconcile_sql).
        check_keys(strategy.unique_key, source_schema, to_string(strategy.mode).c_str());
        break;
      default:
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: the postgres sink does not support the strategy '{}'", where_,
                                to_string(strategy.mode)),
                    "use full_refresh, append, merge, replace, partition_replace, snapshot_diff or scd2");
    }
    return steps;
  }

  // --- reconciliation (snapshot_diff, scd2, key_snapshot) -----------------------------

  // The target's columns as they are now (none yet: the source's, as CreateTable makes them).
  ReconcileTables reconcile_tables(PgConnection& db, const Schema& source_schema,
                                   const std::string& staging) const {
    ReconcileTables t;
    t.target = qualified(table_);
    t.staging = qualified(staging);
    t.columns = source_schema.columns;
    for (const auto& c : pg::table_columns(db, schema_, table_)) t.target_columns.insert(c.name);
    if (t.target_columns.empty())
      for (const auto& c : source_schema.columns) t.target_columns.insert(c.name);
    return t;
  }

  static ReconcileDialect reconcile_dialect() {
    ReconcileDialect d;
    d.quote_ident = [](const std::string& n) { return quote_ident(n); };
    // Every type's text output is exact (floats: shortest round-trip since PostgreSQL 12).
    d.value_text = [](const std::string& c, const LogicalType&) { return "(" + c + ")::text"; };
    d.hash_text = [](const std::string& text) { return "left(md5(" + text + "), 16)"; };
    d.timestamp_literal = [](const std::string& iso) {
      return pg::quote_literal(iso) + "::timestamptz";
    };
    d.timestamp_type = "timestamptz";
    d.bool_type = "boolean";
    d.text_type = "text";
    d.true_literal = "true";
    d.false_literal = "false";
    // The first 60 bits of each row hash summed modulo 2^60: exact (numeric sum), and the
    // same number as SQLite's dpone_hash_sum.
    d.hash_sum = [](const std::string& hash) {
      return "coalesce((sum(('x' || substr(" + hash +
             ", 1, 15))::bit(60)::bigint) % 1152921504606846976)::bigint, 0)";
    };
    return d;
  }

  // partition_replace: `partition_by` (a column or a list), else the target's declarative
  // partition key (plain columns only).
  std::vector<std::string> partition_columns(const StrategySpec& strategy,
                                             const TargetShape& shape) const {
    std::vector<std::string> cols;
    const auto& by = strategy.raw.is_object() ? strategy.raw.value("partition_by", nlohmann::json())
                                              : nlohmann::json();
    if (by.is_string()) cols.push_back(by.get<std::string>());
    if (by.is_array()) {
      for (const auto& c : by) {
        if (c.is_string()) cols.push_back(c.get<std::string>());
      }
    }
    if (cols.empty()) cols = shape.partition_key;
    if (cols.empty() && !shape.from_catalog) return {"<partition key of the target>"};
    if (cols.empty()) {
      throw Error(ErrorCode::ConfigMissingKey,
                  fmt::format("{}: partition_replace needs `partition_by` (the column(s) whose "
                              "values name a partition), or a target partitioned by plain columns",
                              where_));
    }
    return cols;
  }

  static int64_t max_partitions(const StrategySpec& strategy) {
    constexpr int64_t kDefault = 100;
    if (!strategy.raw.is_object()) return kDefault;
    const auto& v = strategy.raw.value("max_partitions_per_run", nlohmann::json(kDefault));
    return v.is_number_integer() ? v.get<int64_t>() : kDefault;
  }

  // The receipt compare-and-set (PromoteRequest::expected_latest_receipt), first in the
  // promotion transaction: a transaction-scoped advisory lock on the stream's receipts
  // (held until COMMIT or ROLLBACK) orders two promotions of one stream, and the second
  // sees the first's committed receipt and rolls back.
  void check_latest_receipt(PgConnection& db, const std::string& expected, std::vector<std::string>& log) {
    const std::string lock = "SELECT pg_advisory_xact_lock(hashtext($1))";
    db.exec_params(lock, {"dpone.receipts:" + schema_ + "." + table_ + ":" + stream_});
    log.push_back(lock);
    std::string latest;
    if (pg::relation_kind(db, schema_, kLoadsTable)) {
      PgResult r = db.exec_params(fmt::format("SELECT \"run_id\" FROM {} WHERE \"stream\" = $1 ORDER BY "
                                              "\"loaded_at\" DESC, \"run_id\" DESC LIMIT 1",
                                              qualified(kLoadsTable)),
                                  {stream_});
      if (r.rows() == 1) latest = std::string(r.value(0, 0));
    }
    if (latest != expected) throw_receipt_conflict(where_, stream_, latest, expected);
  }

  std::vector<std::string> receipt_sql() const {
    return {
        fmt::format("CREATE TABLE IF NOT EXISTS {} (\"stream\" text NOT NULL, \"run_id\" text "
                    "NOT NULL, \"base_revision\" bigint, \"window\" text, \"new_position\" text, "
                    "\"rows\" bigint, \"loaded_at\" text, PRIMARY KEY (\"stream\", \"run_id\"))",
                    qualified(kLoadsTable)),
        fmt::format("INSERT INTO {} (\"stream\", \"run_id\", \"base_revision\", \"window\", "
                    "\"new_position\", \"rows\", \"loaded_at\") VALUES ($1, $2, $3, $4, $5, $6, "
                    "$7)",
                    qualified(kLoadsTable))};
  }

  void write_receipt(PgConnection& db, const LoadReceipt& receipt, std::vector<std::string>& log) {
    auto sql = receipt_sql();
    db.exec(sql[0]);
    log.push_back(sql[0]);
    db.exec_params(sql[1], {receipt.stream.empty() ? stream_ : receipt.stream,
                            receipt.run_id.empty() ? run_id_ : receipt.run_id,
                            std::to_string(receipt.base_revision), receipt.window.dump(),
                            receipt.new_position.dump(), std::to_string(receipt.rows),
                            receipt.loaded_at.empty() ? now_iso8601() : receipt.loaded_at});
    log.push_back(sql[1]);
  }

  nlohmann::json parse_receipt_json(const std::optional<std::string>& text,
                                    const std::string& run_id) const {
    if (!text) return nullptr;
    try {
      return nlohmann::json::parse(*text);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::SinkUnavailable,
                  fmt::format("{}: the load receipt of run {} in {}.{} is not valid JSON ({})",
                              where_, run_id, schema_, kLoadsTable, e.what()),
                  fmt::format("delete that row from {} and re-run", kLoadsTable));
    }
  }

  std::string stream_;
  std::string run_id_;
  Diagnostics* diagnostics_;
  std::function<void(int64_t, int64_t)> on_progress_;
  std::string where_;
  ResolvedConnection connection_;
  bool internal_query_ = true;  // option internal_query (default true)
  std::string table_;
  std::string schema_;
  std::unique_ptr<PgConnection> conn_;
  std::optional<StrategySpec> strategy_;  // from the sink options; decides direct exchange
  bool checked_schema_ = false;
  std::set<std::string> warned_;
};

}  // namespace

std::unique_ptr<Sink> make_postgres_sink(const SinkContext& context) {
  return std::make_unique<PgSink>(context);
}

}  // namespace dpone
