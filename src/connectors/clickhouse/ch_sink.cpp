// The clickhouse sink: staged loads into a MergeTree table over HTTP.
//
//   stage    -> CREATE TABLE `<table>__dpone_stg_<run>` (AS the target when the source
//               columns map to exactly the target's columns, else from the source schema),
//               then one streamed INSERT ... FORMAT TabSeparated: record batches are
//               encoded, a pg_copy_binary stream is rendered as the server's text
//               (ch_pg_copy.hpp), a pg_copy_text stream is passed through (only bool, bytea and
//               sub-second timestamp fields are rewritten). Staged rows are counted on the
//               server and must equal the rows sent.
//   check    -> not_null / unique as SQL on the staging table
//   promote  -> append, merge, replace and partition_replace change the live target in
//               place (INSERT ... SELECT from staging, which feeds the target's
//               materialized views; DELETE mutations; REPLACE PARTITION), so rows that
//               other writers insert meanwhile are kept; full_refresh and the first load
//               build the complete table beside the target and swap it in with RENAME.
//               ClickHouse has no transactions: before the target changes, an intent row
//               (`<table>__dpone_pending_<run>`) records how to tell afterwards whether the
//               change landed, the receipt is inserted after it, and a run that finds the
//               intent of a dead run decides from it (recover_promotions(); README.md
//               "Concurrent writers and crash safety").
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "connectors/clickhouse/ch_connector.hpp"
#include "connectors/clickhouse/ch_pg_copy.hpp"
#include "core/connector/sql_gates.hpp"
#include "core/errors.hpp"
#include "core/util/failpoint.hpp"
#include "core/util/time.hpp"

namespace dpone {

namespace {

using ch::Client;
using ch::quote_ident;
using ch::quote_literal;

constexpr int kMaxSamples = 5;
constexpr const char* kStagingInfix = "__dpone_stg_";
constexpr const char* kShadowInfix = "__dpone_new_";
constexpr const char* kOldInfix = "__dpone_old_";
constexpr const char* kPendingInfix = "__dpone_pending_";
constexpr const char* kLoadsSuffix = "__dpone__loads";
constexpr const char* kReceiptColumns =
    "stream String, run_id String, base_revision Int64, window String, new_position String, "
    "rows Int64, loaded_at String";
constexpr const char* kReceiptNames =
    "stream, run_id, base_revision, window, new_position, rows, loaded_at";

std::string join_quoted(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names) out.push_back(quote_ident(n));
  return fmt::format("{}", fmt::join(out, ", "));
}

class ChSink : public Sink {
 public:
  explicit ChSink(const SinkContext& ctx)
      : stream_(ctx.stream),
        run_id_(ctx.run_id),
        diagnostics_(ctx.diagnostics),
        on_progress_(ctx.on_progress) {
    ConnectorOptions options(ctx.options, fmt::format("stream '{}': clickhouse sink", ctx.stream));
    where_ = options.where();
    const ResolvedConnection& conn = ch::require_connection(ctx.connection, where_);
    endpoint_ = ch::endpoint_from(conn, where_);
    auto table = options.string("table");
    if (!table) {
      throw Error(ErrorCode::ConfigMissingKey,
                  fmt::format("{} needs the `table` option (the target table)", where_));
    }
    table_ = *table;
    db_ = options.string("database")
              .value_or(endpoint_.database.empty() ? "default" : endpoint_.database);
    order_by_ = options.string_list("order_by");
    partition_by_ = options.string("partition_by").value_or("");
    // The stream's option wins over the connection's default.
    std::string policy = options.string("subsecond_timestamps")
                             .value_or(conn.get("subsecond_timestamps").value_or("fail"));
    auto p = ch::parse_subsecond_policy(policy);
    if (!p) {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: subsecond_timestamps '{}' is not fail, int64_micros or string",
                              where_, policy));
    }
    policy_.subsecond = *p;
    std::string dates =
        options.string("date_storage").value_or(conn.get("date_storage").value_or("native"));
    if (dates != "native" && dates != "string") {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: date_storage '{}' is not native or string", where_, dates));
    }
    policy_.dates_as_string = dates == "string";
    pg_copy_format_ =
        options.string("pg_copy_format").value_or(conn.get("pg_copy_format").value_or("auto"));
    if (pg_copy_format_ != "auto" && pg_copy_format_ != "text") {
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("{}: pg_copy_format '{}' is not auto or text", where_, pg_copy_format_));
    }
    if (ctx.options.contains("mutation_timeout_s") && ctx.options["mutation_timeout_s"].is_number())
      mutation_timeout_s_ = ctx.options["mutation_timeout_s"].get<double>();
  }

  // --- plan-time ------------------------------------------------------------------

  TargetInfo inspect() override {
    Client& db = client(ErrorCode::SinkUnavailable);
    TargetInfo info;
    info.name = db_ + "." + table_;
    info.server = "ClickHouse " + db.version();
    const ch::ServerFeatures& f = features();
    info.capabilities = {
        "HTTP INSERT ... FORMAT TabSeparated, streamed (chunked)",
        "pg_copy_binary and pg_copy_text transcoding",
        "INSERT ... SELECT into the live target (feeds its materialized views)",
        f.exchange ? "EXCHANGE TABLES available (full_refresh swaps with RENAME)"
                   : "multi-table RENAME swap for full_refresh (no EXCHANGE TABLES)",
        "ATTACH/REPLACE PARTITION ... FROM (hard-linked parts)",
        f.lightweight_delete ? "mutations (ALTER ... DELETE), lightweight DELETE available"
                             : "ALTER ... DELETE mutations, waited for (no lightweight DELETE)",
        f.datetime64 ? "DateTime64" : "DateTime whole seconds only (no DateTime64)",
        "Nullable",
        "column comments carry dpone logical types"};
    auto cols = ch::table_columns(db, db_, table_);
    if (cols.empty()) return info;
    info.exists = true;
    for (const auto& c : cols) {
      ch::ReadType r = ch::map_clickhouse(c.type, c.comment);
      if (!r.known && diagnostics_ && warned_.insert(c.name).second) {
        diagnostics_->warn(
            fmt::format("{}: column '{}' of {} has the type '{}', which dpone does "
                        "not map; it is compared as {}",
                        where_, c.name, info.name, c.type, r.type.to_string()));
      }
      info.schema.columns.push_back(Column{c.name, r.type, r.nullable});
    }
    info.rows = db.int64("SELECT count() FROM " + qualified(table_));
    return info;
  }

  std::vector<ArtifactSpec> accepts() const override {
    // Binary COPY first: PostgreSQL produces it with less CPU than text (README.md
    // "PostgreSQL COPY pass-through"); `pg_copy_format: text` keeps the text path.
    std::vector<ArtifactSpec> out;
    if (pg_copy_format_ != "text")
      out.push_back(ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::PgCopyBinary});
    out.insert(out.end(), {ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::PgCopyText},
                           ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch},
                           ArtifactSpec{ArtifactKind::InMemoryRows, WireFormat::RecordBatch}});
    return out;
  }

  std::vector<std::string> render_ddl(const Schema& source_schema,
                                      const std::vector<const SchemaChange*>& changes) override {
    return ddl_for(source_schema, changes, qualified(table_));
  }

  std::vector<std::string> describe_promotion(const StrategySpec& strategy,
                                              const Schema& source_schema) override {
    Client& db = client(ErrorCode::SinkUnavailable);
    std::vector<std::string> out;
    Plan plan;
    plan.live = false;
    plan.exists = ch::table_exists(db, db_, table_);
    plan.staging = staging_name();
    PromoteRequest request;
    request.strategy = strategy;
    request.source_schema = source_schema;
    run_promotion(db, plan, request, out);
    return out;
  }

  std::optional<LoadReceipt> latest_receipt() override {
    Client& db = client(ErrorCode::SinkUnavailable);
    if (!ch::table_exists(db, db_, loads_name())) return std::nullopt;
    ch::Rows r = db.rows(fmt::format(
        "SELECT {} FROM {} WHERE stream = {} ORDER BY loaded_at DESC, run_id DESC LIMIT 1",
        kReceiptNames, qualified(loads_name()), quote_literal(stream_)));
    if (r.empty() || r[0].size() < 7) return std::nullopt;
    LoadReceipt out;
    out.stream = r[0][0];
    out.run_id = r[0][1];
    out.base_revision = std::stoll(r[0][2]);
    out.window = parse_json(r[0][3], out.run_id);
    out.new_position = parse_json(r[0][4], out.run_id);
    out.rows = std::stoll(r[0][5]);
    out.loaded_at = r[0][6];
    return out;
  }

  // --- run-time -------------------------------------------------------------------

  std::vector<std::string> cleanup_abandoned(
      const std::vector<std::string>& live_run_ids) override {
    Client& db = client(ErrorCode::SinkUnavailable);
    std::vector<std::string> removed;
    const std::string mine = ch::sanitize_run_id(run_id_);
    // An intent and the tables of its run wait for recover_promotions() of their stream.
    auto tables = dpone_tables(db);
    std::vector<std::string> undecided;
    for (const auto& name : tables)
      if (name.rfind(pending_prefix(), 0) == 0)
        undecided.push_back(name.substr(pending_prefix().size()));
    for (const auto& name : tables) {
      if (name == loads_name()) continue;
      if (names_live_run(name, undecided, [](const std::string& s) { return s; })) continue;
      if (name.size() >= mine.size() &&
          name.compare(name.size() - mine.size(), mine.size(), mine) == 0)
        continue;
      if (names_live_run(name, live_run_ids, ch::sanitize_run_id)) continue;
      db.exec("DROP TABLE IF EXISTS " + qualified(name));
      removed.push_back(db_ + "." + name);
    }
    return removed;
  }

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
    Client& db = client(ErrorCode::StageFailed);
    db.set_failure_code(ErrorCode::StageFailed);
    Schema staged_columns;                      // as the catalog types them (comments included)
    std::map<std::string, ch::ReadType> reads;  // by quoted column name
    for (const auto& c : ch::table_columns(db, db_, staged.staging_name)) {
      ch::ReadType r = ch::map_clickhouse(c.type, c.comment);
      staged_columns.columns.push_back(Column{c.name, r.type, r.nullable});
      reads[quote_ident(c.name)] = r;
    }
    if (staged_columns.columns.empty()) {
      throw Error(ErrorCode::StageFailed,
                  fmt::format("{}: staging table {} is missing", where_, staged.staging_name));
    }
    SqlGateTarget target{qualified(staged.staging_name),
                         staged_gate_schema(gates, std::move(staged_columns)), where_,
                         "clickhouse"};
    SqlGateDialect dialect;
    dialect.quote_ident = [](const std::string& c) { return quote_ident(c); };
    dialect.quote_literal = [](const std::string& v) { return quote_literal(v); };
    dialect.comparable = [](const std::string& c, const LogicalType&) { return c; };
    dialect.literal = [](const LogicalType& t, const std::string& v) -> std::string {
      switch (t.id) {
        case TypeId::Int16:
        case TypeId::Int32:
        case TypeId::Int64:
        case TypeId::Float32:
        case TypeId::Float64:
        case TypeId::Decimal:
          return v;
        case TypeId::Date:
          return "toDate(" + quote_literal(v) + ")";
        case TypeId::Timestamp: {
          int64_t m = 0;
          if (t.precision == 0 && ch::timestamp_to_micros(v, m)) {
            std::string text = ch::micros_to_timestamp(m, false).substr(0, 19);
            text[10] = ' ';
            return fmt::format("toDateTime({}, 'UTC')", quote_literal(text));
          }
          return quote_literal(v);
        }
        default:
          return quote_literal(v);
      }
    };
    dialect.hash_form = [this, reads](const std::string& c, const LogicalType& t) -> std::string {
      auto it = reads.find(c);
      const std::string base = it == reads.end() ? "" : it->second.base;
      switch (t.id) {
        case TypeId::Bool:
        case TypeId::Int16:
        case TypeId::Int32:
        case TypeId::Int64:
        case TypeId::Decimal:
        case TypeId::Date:
        case TypeId::Uuid:
          return fmt::format("toString({})", c);
        case TypeId::Float32:
          return fmt::format(
              "if(isNaN({0}), 'NaN', lower(hex(reverse(reinterpretAsString(toFloat32({0}))))))", c);
        case TypeId::Float64:
          return fmt::format(
              "if(isNaN({0}), 'NaN', lower(hex(reverse(reinterpretAsString(toFloat64({0}))))))", c);
        case TypeId::Bytes:
          return fmt::format("lower(hex({}))", c);
        case TypeId::Time:
          return fmt::format("replaceRegexpOne({}, '(\\\\.[0-9]*[1-9])0+$|\\\\.0+$', '\\\\1')", c);
        case TypeId::Timestamp:
          if (base.rfind("DateTime", 0) == 0 && t.precision == 0)
            return fmt::format("concat(formatDateTime({}, '%Y-%m-%dT%H:%M:%S'){})", c,
                               t.tz ? ", 'Z'" : "");
          if (base == "String") return c;
          throw Error(ErrorCode::ConfigBadValue,
                      fmt::format("{}: typed_hash cannot hash the column {} ({} stored as {})",
                                  where_, c, t.to_string(), base),
                      "leave the column out of the gate's columns");
        default:
          return c;
      }
    };
    dialect.byte_length = [](const std::string& e) { return "length(" + e + ")"; };
    dialect.hash_query = [](const std::string& row, const std::string& stg) {
      return fmt::format(
          "SELECT count(), toString(sum(reinterpretAsUInt64(reverse(substring(MD5({}), 1, 8))))) "
          "FROM {}",
          row, stg);
    };
    struct Runner : SqlGateRunner {
      Client& db;
      explicit Runner(Client& d) : db(d) {}
      std::vector<SqlRow> query(const std::string& sql) override {
        ch::Rows r = db.rows(sql, {}, true);
        std::vector<SqlRow> out;
        if (r.empty()) return out;
        const auto& names = r[0];
        for (size_t i = 1; i < r.size(); ++i) {
          SqlRow row;
          for (size_t c = 0; c < names.size() && c < r[i].size(); ++c) {
            if (r[i][c] == "\\N") {
              row.emplace_back(names[c], std::nullopt);
            } else {
              row.emplace_back(names[c], r[i][c]);
            }
          }
          out.push_back(std::move(row));
        }
        return out;
      }
    } runner(db);
    return run_sql_gates(gates, target, dialect, runner, kMaxSamples);
  }

  PromoteResult promote(const StagedLoad& staged, const PromoteRequest& request) override {
    if (staged.staging_name.find(kStagingInfix) == std::string::npos) {
      throw Error(ErrorCode::Internal, fmt::format("{}: '{}' is not a dpone staging table", where_,
                                                   staged.staging_name));
    }
    check_strategy(request.strategy, request.source_schema);
    ddl_for(request.source_schema, request.changes, qualified(table_));  // config errors first
    Client& db = client(ErrorCode::SinkUnavailable);
    db.set_failure_code(ErrorCode::PromoteFailed);
    PromoteResult result;
    Plan plan;
    plan.live = true;
    plan.exists = ch::table_exists(db, db_, table_);
    plan.staging = staged.staging_name;
    plan.staged_rows = staged.rows;
    plan.same_as_target = staged.details.value("same_as_target", false);
    try {
      run_promotion(db, plan, request, result.sql);
    } catch (...) {
      if (plan.target_touched) {
        // The outcome is for the next run to decide from the intent (recover_promotions):
        // the intent, the staging and the shadow stay.
        keep_staging_ = true;
      } else {
        drop_quietly(db, shadow_name());
        drop_quietly(db, pending_name(suffix()));
      }
      throw;
    }
    result.inserted = plan.inserted;
    result.updated = plan.updated;
    result.deleted = plan.deleted;
    // Data and receipt are not one transaction, but the intent makes them one outcome as
    // seen by the next run (recover_promotions). What readers see meanwhile depends on the
    // strategy (README.md "Concurrent writers and crash safety").
    result.atomic = false;
    return result;
  }

  void abort(const StagedLoad& staged) noexcept override {
    if (keep_staging_) {  // an undecided promotion's intent needs it
      if (diagnostics_)
        diagnostics_->warn(fmt::format(
            "{}: the promotion stopped after it began to change {}.{}; staging {} is kept: the "
            "next run decides from {}.{} whether the change landed (README.md \"Concurrent "
            "writers and crash safety\")",
            where_, db_, table_, staged.staging_name, db_, pending_name(suffix())));
      return;
    }
    try {
      Client& db = client(ErrorCode::SinkUnavailable);
      db.exec("DROP TABLE IF EXISTS " + qualified(staged.staging_name));
    } catch (const std::exception& e) {
      warn_staging_left(diagnostics_, where_, staged.staging_name, e);
    }
  }

  // Decides every promotion of this stream that a dead run began and did not finish, from
  // the run's intent: waits until the server has finished the run's statements, then runs
  // the intent's check. A change that landed gets its receipt (the runtime then advances
  // the state from it, nothing is loaded twice); one that did not land is left for this
  // run to load again; an append that stopped part-way (the server failed inside the
  // INSERT) cannot be decided and stops the run with what to do.
  std::vector<std::string> recover_promotions(
      const std::vector<std::string>& live_run_ids) override {
    Client& db = client(ErrorCode::SinkUnavailable);
    std::vector<std::string> done;
    for (const auto& name : dpone_tables(db)) {
      if (name.rfind(pending_prefix(), 0) != 0) continue;
      const std::string run = name.substr(pending_prefix().size());
      if (run == suffix() || names_live_run(name, live_run_ids, ch::sanitize_run_id)) continue;
      ch::Rows r = db.rows(
          fmt::format("SELECT stream, run_id, mode, staging, check_sql, landed, unchanged FROM {}",
                      qualified(name)));
      if (r.empty()) {  // died between creating the intent and writing it: nothing changed
        db.exec("DROP TABLE IF EXISTS " + qualified(name));
        done.push_back(fmt::format("{}.{}: an empty intent of run {} dropped", db_, name, run));
        continue;
      }
      if (r[0].size() < 7 || r[0][0] != stream_) continue;  // another stream's
      const std::string& run_id = r[0][1];
      const std::string& mode = r[0][2];
      const std::string& staging = r[0][3];
      const std::string& check_sql = r[0][4];
      const std::string& landed = r[0][5];
      const std::string& unchanged = r[0][6];
      wait_queries(db, run);
      wait_mutations(db, table_);
      const std::string target = qualified(table_);
      const std::string old = table_ + kOldInfix + run;
      if (!ch::table_exists(db, db_, table_) && ch::table_exists(db, db_, old)) {
        // A swap that stopped between its two renames: the old generation goes back.
        db.exec(fmt::format("RENAME TABLE {} TO {}", qualified(old), target));
      }
      std::string outcome;
      bool committed = ch::table_exists(db, db_, loads_name()) &&
                       db.int64(fmt::format("SELECT count() FROM {} WHERE run_id = {}",
                                            qualified(loads_name()), quote_literal(run_id))) > 0;
      if (committed) {
        outcome = "its receipt was committed";
      } else {
        const std::string seen = db.value(check_sql).value_or("");
        if (seen == landed) {
          // The intent holds the receipt as it would have been inserted.
          db.exec(fmt::format("INSERT INTO {0} ({1}) SELECT {1} FROM {2}", qualified(loads_name()),
                              kReceiptNames, qualified(name)));
          outcome = fmt::format("its {} landed; its receipt is written now", mode);
        } else if (unchanged.empty() || seen == unchanged) {
          outcome = fmt::format("its {} did not land; the window loads again", mode);
        } else {
          throw Error(
              ErrorCode::PromoteFailed,
              fmt::format("{}: run {} stopped inside its INSERT into {}.{} (the server failed or "
                          "refused it part-way): the target holds {} rows of the window where it "
                          "held {} before and would hold {} with all of it, so dpone cannot tell "
                          "which rows to add without duplicating any",
                          where_, run_id, db_, table_, seen, unchanged, landed),
              fmt::format("the staged rows are in {}.{}; either delete the rows that landed (the "
                          "rows of {} equal to a staged row) or insert the missing ones, then "
                          "insert the run's receipt (the row of {}.{}) into {}.{} and drop {}.{}",
                          db_, staging, table_, db_, name, db_, loads_name(), db_, name));
        }
      }
      for (const auto& t : {staging, table_ + kShadowInfix + run, old})
        db.exec("DROP TABLE IF EXISTS " + qualified(t));
      db.exec("DROP TABLE IF EXISTS " + qualified(name));
      done.push_back(fmt::format("{}.{}: the promotion of run {} was interrupted; {}", db_, table_,
                                 run_id, outcome));
    }
    return done;
  }

 private:
  struct Plan {
    bool live = false;
    bool exists = false;
    bool same_as_target = false;
    bool target_touched = false;  // a statement that changes the target was sent
    std::string staging;
    int64_t staged_rows = 0;
    int64_t inserted = 0, updated = 0, deleted = 0;
  };

  Client& client(ErrorCode code) {
    if (!client_) client_ = std::make_unique<Client>(endpoint_, ErrorCode::SinkUnavailable);
    client_->set_failure_code(code);
    return *client_;
  }

  const ch::ServerFeatures& features() {
    if (!features_) {
      if (!client_) client_ = std::make_unique<Client>(endpoint_, ErrorCode::SinkUnavailable);
      Client& db = *client_;
      auto [major, minor] = db.version_number();
      features_ = ch::features_of(major, minor, db.version());
    }
    return *features_;
  }

  // --- names ----------------------------------------------------------------------

  std::string qualified(const std::string& name) const {
    return quote_ident(db_) + "." + quote_ident(name);
  }
  std::string suffix() const { return ch::sanitize_run_id(run_id_); }
  std::string staging_name() const { return table_ + kStagingInfix + suffix(); }
  std::string shadow_name() const { return table_ + kShadowInfix + suffix(); }
  std::string old_name() const { return table_ + kOldInfix + suffix(); }
  std::string loads_name() const { return table_ + kLoadsSuffix; }
  std::string pending_prefix() const { return table_ + kPendingInfix; }
  std::string pending_name(const std::string& run) const { return pending_prefix() + run; }
  // The query_id of this run's statements that change the target: recovery waits until
  // the server has none of a dead run's left (a statement goes on after its client died).
  std::string query_id(const char* step) const { return "dpone_" + suffix() + "_" + step; }

  // Every table of this target dpone created except the target itself.
  std::vector<std::string> dpone_tables(Client& db) {
    std::vector<std::string> out;
    std::string prefix = table_ + "__dpone_";
    for (auto& r : db.rows(fmt::format("SELECT name FROM system.tables WHERE database = {} AND "
                                       "startsWith(name, {}) ORDER BY name",
                                       quote_literal(db_), quote_literal(prefix))))
      out.push_back(r[0]);
    return out;
  }

  void drop_quietly(Client& db, const std::string& name) noexcept {
    try {
      db.exec("DROP TABLE IF EXISTS " + qualified(name));
    } catch (const std::exception&) {
      // Left for cleanup_abandoned() of the next run; the original error matters more.
    }
  }

  // Waits until the server runs no statement of run `run` (query ids from query_id()).
  void wait_queries(Client& db, const std::string& run) {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(mutation_timeout_s_ * 1000));
    const std::string sql =
        fmt::format("SELECT count() FROM system.processes WHERE startsWith(query_id, {})",
                    quote_literal("dpone_" + run + "_"));
    while (db.int64(sql) > 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw Error(ErrorCode::PromoteFailed,
                    fmt::format("{}: a statement of the dead run {} is still running on the "
                                "server after {} s",
                                where_, run, mutation_timeout_s_),
                    fmt::format("see system.processes (query_id dpone_{}_...); wait for it or "
                                "KILL QUERY it, then re-run",
                                run));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // --- DDL ------------------------------------------------------------------------

  std::string column_def(const Column& c) {
    ch::ColumnMapping m = ch::map_logical(c, policy_, features(), where_);
    std::string def = quote_ident(c.name) + " " + m.type;
    if (!m.comment.empty()) def += " COMMENT " + quote_literal(m.comment);
    return def;
  }

  std::vector<std::string> sort_key(const Schema& schema) const {
    if (!order_by_.empty()) return order_by_;
    std::vector<std::string> key;
    for (const auto& k : schema.primary_key) {
      int i = schema.find(k);
      if (i < 0 || schema.columns[static_cast<size_t>(i)].nullable) return {};
      key.push_back(k);
    }
    return key;
  }

  std::string create_table_sql(const std::string& name, const Schema& schema) {
    std::vector<std::string> defs;
    for (const auto& c : schema.columns) defs.push_back(column_def(c));
    auto key = sort_key(schema);
    std::string order = key.empty() ? "tuple()" : "(" + join_quoted(key) + ")";
    return fmt::format("CREATE TABLE {} ({}) ENGINE = MergeTree{} ORDER BY {}", name,
                       fmt::join(defs, ", "),
                       partition_by_.empty() ? "" : " PARTITION BY " + partition_by_, order);
  }

  std::vector<std::string> ddl_for(const Schema& source_schema,
                                   const std::vector<const SchemaChange*>& changes,
                                   const std::string& target) {
    std::vector<std::string> out;
    for (const SchemaChange* change : changes) {
      const Column* col = change->to ? &*change->to : nullptr;
      int idx = source_schema.find(change->column);
      if (!col && idx >= 0) col = &source_schema.columns[static_cast<size_t>(idx)];
      switch (change->kind) {
        case ChangeKind::CreateTable:
          if (source_schema.columns.empty()) {
            throw Error(
                ErrorCode::Internal,
                fmt::format("{}: cannot create {} from a schema without columns", where_, target));
          }
          out.push_back(create_table_sql(target, source_schema));
          break;
        case ChangeKind::AddColumn:
        case ChangeKind::WidenType:
        case ChangeKind::MakeNullable: {
          if (!col) {
            throw Error(ErrorCode::Internal,
                        fmt::format("{}: change '{}' on column '{}' carries no column definition",
                                    where_, to_string(change->kind), change->column));
          }
          Column c = *col;
          if (change->kind == ChangeKind::AddColumn) c.nullable = true;  // existing rows have none
          if (change->kind == ChangeKind::MakeNullable) c.nullable = true;
          ch::ColumnMapping m = ch::map_logical(c, policy_, features(), where_);
          // ADD/MODIFY COLUMN ... COMMENT is ignored by 18.16: COMMENT COLUMN is its own
          // command (in the same ALTER). An empty comment clears a stale dpone type.
          std::string comment;
          if (!m.comment.empty() || change->kind != ChangeKind::AddColumn)
            comment = fmt::format(", COMMENT COLUMN {} {}", quote_ident(c.name),
                                  quote_literal(m.comment));
          out.push_back(fmt::format("ALTER TABLE {} {} COLUMN {} {}{}", target,
                                    change->kind == ChangeKind::AddColumn ? "ADD" : "MODIFY",
                                    quote_ident(c.name), m.type, comment));
          break;
        }
        case ChangeKind::MakeNotNull:
          break;  // the source promises no NULLs where the target allows them
        default:
          throw Error(ErrorCode::SchemaUnsafeChange,
                      fmt::format("{}: cannot apply '{}' to column '{}' of {}{}", where_,
                                  to_string(change->kind), change->column, target,
                                  change->detail.empty() ? "" : " (" + change->detail + ")"),
                      "change the target table by hand, or keep the source type unchanged");
      }
    }
    return out;
  }

  // --- staging --------------------------------------------------------------------

  // True when the source columns map to exactly the target's columns (names, order and
  // types): staging is then created AS the target and its parts attach to it directly.
  bool source_matches_target(Client& db, const Schema& source_schema) {
    auto cols = ch::table_columns(db, db_, table_);
    if (cols.size() != source_schema.columns.size()) return false;
    for (size_t i = 0; i < cols.size(); ++i) {
      const Column& s = source_schema.columns[i];
      if (cols[i].name != s.name) return false;
      ch::ColumnMapping m = ch::map_logical(s, policy_, features(), where_);
      if (m.type != cols[i].type) return false;
      if (ch::map_clickhouse(cols[i].type, cols[i].comment).type != s.type) return false;
    }
    return true;
  }

  StagedLoad stage_rows(Artifact artifact, const Schema& source_schema) {
    Client& db = client(ErrorCode::StageFailed);
    db.set_failure_code(ErrorCode::StageFailed);
    std::vector<ch::Encode> encodes;
    for (const auto& c : source_schema.columns)
      encodes.push_back(ch::map_logical(c, policy_, features(), where_).encode);
    StagedLoad staged;
    staged.staging_name = staging_name();
    const std::string stg = qualified(staged.staging_name);
    bool same = ch::table_exists(db, db_, table_) && source_matches_target(db, source_schema);
    db.exec("DROP TABLE IF EXISTS " + stg);
    db.exec(same ? fmt::format("CREATE TABLE {} AS {}", stg, qualified(table_))
                 : create_table_sql(stg, source_schema));
    const std::string insert = fmt::format("INSERT INTO {} ({}) FORMAT TabSeparated", stg,
                                           join_quoted(source_schema.names()));
    // best_effort: DateTime accepts "...+00" (COPY text) and "...T...Z" (canonical).
    const ch::Settings settings{{"date_time_input_format", "best_effort"}};
    int64_t sent = 0;
    if (auto* s = std::get_if<StreamingRows>(&artifact)) {
      if (s->format == WireFormat::PgCopyText && s->bytes) {
        sent = load_copy_text(db, insert, settings, *s->bytes, encodes, staged);
      } else if (s->format == WireFormat::PgCopyBinary && s->bytes) {
        // Timestamps go as "YYYY-MM-DD HH:MM:SS[.f]" in UTC, which the server parses
        // without best_effort (cheaper for it; README.md "PostgreSQL COPY pass-through").
        ch::PgBinaryTranscoder transcoder(s->wire_types, encodes, source_schema.names(), true);
        sent = load_copy_binary(db, insert, {}, *s->bytes, transcoder, staged);
      } else if (s->format == WireFormat::RecordBatch && s->batches) {
        BatchReader* reader = s->batches.get();
        sent = load_batches(
            db, insert, settings, [&]() { return reader->next(); }, source_schema, encodes, staged);
      } else {
        throw Error(ErrorCode::Internal, fmt::format("{}: artifact {} is not accepted", where_,
                                                     spec_of(artifact).to_string()));
      }
    } else if (auto* m = std::get_if<InMemoryRows>(&artifact)) {
      size_t i = 0;
      sent = load_batches(
          db, insert, settings,
          [&]() -> std::optional<RecordBatch> {
            if (i >= m->batches.size()) return std::nullopt;
            return std::move(m->batches[i++]);
          },
          source_schema, encodes, staged);
    } else {
      throw Error(ErrorCode::Internal, fmt::format("{}: artifact {} is not accepted", where_,
                                                   spec_of(artifact).to_string()));
    }
    // No X-ClickHouse-Summary on old servers: count what landed.
    int64_t landed = db.int64("SELECT count() FROM " + stg);
    if (landed != sent) {
      throw Error(ErrorCode::StageFailed,
                  fmt::format("{}: sent {} rows to {} but it holds {}", where_, sent, stg, landed),
                  "a row with an embedded raw newline or a dropped block; re-run");
    }
    staged.rows = landed;
    staged.details = {{"server", "ClickHouse " + db.version()},
                      {"table", db_ + "." + staged.staging_name},
                      {"same_as_target", same}};
    if (on_progress_) on_progress_(staged.rows, staged.bytes);
    return staged;
  }

  // Streams the bytes `refill(out)` appends (it appends nothing at the end) as the body
  // of `insert`, telling the runtime the progress every kProgressRows rows (`rows()`).
  // The pump of both COPY paths: memory is one refill's output.
  template <typename Refill, typename Rows>
  void pump(Client& db, const std::string& insert, const ch::Settings& settings, Refill refill,
            Rows rows, const StagedLoad& staged) {
    constexpr int64_t kProgressRows = 65536;
    std::string out;
    size_t out_pos = 0;
    bool first = true;
    int64_t next_report = 0;
    db.insert(
        insert,
        [&](char* buf, size_t size) -> size_t {
          if (out_pos >= out.size()) {
            out.clear();
            out_pos = 0;
            refill(out);
          }
          size_t n = std::min(size, out.size() - out_pos);
          std::memcpy(buf, out.data() + out_pos, n);
          out_pos += n;
          int64_t now = rows();
          if (on_progress_ && (first || now >= next_report) && n > 0) {
            first = false;
            on_progress_(now, staged.bytes);
            next_report = now + kProgressRows;
          }
          return n;
        },
        settings);
  }

  int64_t load_copy_text(Client& db, const std::string& insert, const ch::Settings& settings,
                         ByteReader& in, const std::vector<ch::Encode>& encodes,
                         StagedLoad& staged) {
    bool rewrite = std::any_of(encodes.begin(), encodes.end(),
                               [](ch::Encode e) { return e != ch::Encode::Plain; });
    ch::CopyTextTranscoder transcoder(encodes);
    std::string raw(256 * 1024, '\0');
    bool eof = false;
    int64_t rows = 0;
    char last = '\n';
    // Counts rows by raw newlines (COPY text escapes them in values).
    auto refill = [&](std::string& out) {
      while (out.empty() && !eof) {
        size_t n = in.read(raw.data(), raw.size());
        if (n == 0) {
          eof = true;
          if (rewrite) {
            transcoder.finish(out);
          } else if (last != '\n') {
            out.push_back('\n');
            ++rows;
          }
          break;
        }
        staged.bytes += static_cast<int64_t>(n);
        std::string_view chunk(raw.data(), n);
        if (rewrite) {
          transcoder.feed(chunk, out);
        } else {
          const char* p = chunk.data();
          const char* end = p + n;
          while (
              (p = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p))))) {
            ++rows;
            ++p;
          }
          last = chunk.back();
          out.assign(chunk);
        }
      }
    };
    pump(
        db, insert, settings, refill, [&] { return rewrite ? transcoder.rows() : rows; }, staged);
    return rewrite ? transcoder.rows() : rows;
  }

  // Streams a binary COPY stream transcoded to TabSeparated (ch_pg_copy.hpp).
  int64_t load_copy_binary(Client& db, const std::string& insert, const ch::Settings& settings,
                           ByteReader& in, ch::PgBinaryTranscoder& transcoder, StagedLoad& staged) {
    std::string raw(256 * 1024, '\0');
    bool eof = false;
    auto refill = [&](std::string& out) {
      while (out.empty() && !eof) {
        size_t n = in.read(raw.data(), raw.size());
        if (n == 0) {
          eof = true;
          transcoder.finish(out);
          break;
        }
        staged.bytes += static_cast<int64_t>(n);
        transcoder.feed(std::string_view(raw.data(), n), out);
      }
    };
    pump(
        db, insert, settings, refill, [&] { return transcoder.rows(); }, staged);
    return transcoder.rows();
  }

  template <typename Next>
  int64_t load_batches(Client& db, const std::string& insert, const ch::Settings& settings,
                       Next next, const Schema& schema, const std::vector<ch::Encode>& encodes,
                       StagedLoad& staged) {
    std::string out;
    size_t out_pos = 0;
    int64_t rows = 0;
    bool eof = false;
    auto encode = [&](const RecordBatch& b) {
      out.clear();
      out_pos = 0;
      for (size_t r = 0; r < b.num_rows(); ++r) {
        for (size_t c = 0; c < b.num_columns(); ++c) {
          if (c) out.push_back('\t');
          if (b.is_null(r, c)) {
            out.append("\\N");
            continue;
          }
          std::string_view v = b.cell(r, c);
          if (c < encodes.size() && encodes[c] == ch::Encode::Micros) {
            int64_t m = 0;
            if (!ch::timestamp_to_micros(v, m)) {
              throw Error(
                  ErrorCode::TypeMismatch,
                  fmt::format("{}: row {}, column '{}': '{}' is not a timestamp", where_,
                              rows + static_cast<int64_t>(r) + 1, schema.columns[c].name, v));
            }
            out.append(std::to_string(m));
          } else {
            if (c < encodes.size() && encodes[c] == ch::Encode::DateRange &&
                !ch::in_clickhouse_date_range(v)) {
              throw Error(
                  ErrorCode::TypeOverflow,
                  fmt::format("{}: row {}, column '{}': '{}' is outside the range of ClickHouse "
                              "Date/DateTime (1970-01-01 to 2105-12-31); the server would wrap it",
                              where_, rows + static_cast<int64_t>(r) + 1, schema.columns[c].name,
                              v),
                  "filter or fix the value at the source, or load the column as text");
            }
            ch::tsv_escape_append(out, v);
          }
        }
        out.push_back('\n');
      }
      rows += static_cast<int64_t>(b.num_rows());
      staged.bytes += static_cast<int64_t>(b.byte_size());
    };
    db.insert(
        insert,
        [&](char* buf, size_t size) -> size_t {
          while (out_pos >= out.size() && !eof) {
            auto b = next();
            if (!b) {
              eof = true;
              out.clear();
              out_pos = 0;
              break;
            }
            encode(*b);
            if (on_progress_) on_progress_(rows, staged.bytes);
          }
          size_t n = std::min(size, out.size() - out_pos);
          std::memcpy(buf, out.data() + out_pos, n);
          out_pos += n;
          return n;
        },
        settings);
    return rows;
  }

  // --- promotion ------------------------------------------------------------------

  void check_strategy(const StrategySpec& strategy, const Schema& source_schema) const {
    auto need_keys = [&](const char* what) {
      if (strategy.unique_key.empty()) {
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: {} needs `unique_key` (the columns that identify a row)",
                                where_, what));
      }
      for (const auto& k : strategy.unique_key) {
        if (source_schema.find(k) < 0) {
          throw Error(
              ErrorCode::ConfigBadValue,
              fmt::format("{}: unique_key column '{}' is not a column of the stream", where_, k),
              fmt::format("columns: {}", fmt::join(source_schema.names(), ", ")));
        }
      }
    };
    switch (strategy.mode) {
      case StrategyMode::FullRefresh:
        break;
      case StrategyMode::Append:
        if (strategy.only_new_rows) need_keys("append with only_new_rows");
        break;
      case StrategyMode::Merge:
        need_keys("merge");
        break;
      case StrategyMode::Replace:
        if (!strategy.raw.contains("where") || !strategy.raw["where"].is_string() ||
            strategy.raw["where"].get<std::string>().empty()) {
          throw Error(ErrorCode::ConfigBadValue,
                      fmt::format("{}: strategy replace needs `where:` (a ClickHouse predicate on "
                                  "the target selecting the slice to replace)",
                                  where_));
        }
        break;
      case StrategyMode::PartitionReplace:
        if (partition_by_.empty()) {
          throw Error(ErrorCode::ConfigBadValue,
                      fmt::format("{}: partition_replace needs the sink option `partition_by` "
                                  "(the target's PARTITION BY expression)",
                                  where_));
        }
        break;
      default:
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: the clickhouse sink does not support the strategy '{}'",
                                where_, to_string(strategy.mode)),
                    "use full_refresh, append, merge, replace or partition_replace");
    }
  }

  std::vector<std::string> partitions_of(Client& db, const std::string& table, bool live) {
    if (!live) return {"<each partition of " + table + ">"};
    std::vector<std::string> out;
    for (auto& r : db.rows(fmt::format(
             "SELECT DISTINCT partition_id FROM system.parts WHERE database = {} AND table = {} "
             "AND active ORDER BY partition_id",
             quote_literal(db_), quote_literal(table))))
      out.push_back(r[0]);
    return out;
  }

  // ALTER ... DELETE is a mutation: asynchronous. Waits until none is pending on `table`.
  void wait_mutations(Client& db, const std::string& table) {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(mutation_timeout_s_ * 1000));
    while (true) {
      int64_t pending = db.int64(fmt::format(
          "SELECT count() FROM system.mutations WHERE database = {} AND table = {} AND is_done = 0",
          quote_literal(db_), quote_literal(table)));
      if (pending == 0) return;
      if (std::chrono::steady_clock::now() > deadline) {
        throw Error(ErrorCode::PromoteFailed,
                    fmt::format("{}: the DELETE mutation on {}.{} did not finish within {} s",
                                where_, db_, table, mutation_timeout_s_),
                    "see system.mutations on the server; raise the sink option mutation_timeout_s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::string key_tuple(const std::vector<std::string>& keys) const {
    return keys.size() == 1 ? quote_ident(keys[0]) : "(" + join_quoted(keys) + ")";
  }

  // The first column of the target's sorting key when it is one of `cols`, else "":
  // bounds the landed check of an append to the staged key range (primary key index).
  std::string first_sort_column(Client& db, const std::vector<std::string>& cols) {
    auto key = ch::sorting_key_columns(
        db.value(fmt::format("SELECT sorting_key FROM system.tables WHERE database = {} AND "
                             "name = {}",
                             quote_literal(db_), quote_literal(table_)))
            .value_or(""));
    if (key.empty() || std::find(cols.begin(), cols.end(), key[0]) == cols.end()) return "";
    return key[0];
  }

  // The staged column `c` as the target types it (what INSERT ... SELECT converts it to).
  std::string as_target(const std::string& c, const std::map<std::string, std::string>& stg_types,
                        const std::map<std::string, std::string>& target_types) const {
    auto s = stg_types.find(c);
    auto t = target_types.find(c);
    if (s == stg_types.end() || t == target_types.end() || s->second == t->second)
      return quote_ident(c);
    return fmt::format("CAST({} AS {})", quote_ident(c), t->second);
  }

  // A 64-bit fingerprint of a row over `cols` (NULL distinct from every value).
  static std::string fingerprint(const std::vector<std::string>& exprs) {
    std::vector<std::string> args;
    for (const auto& e : exprs) {
      args.push_back(fmt::format("isNull({})", e));
      args.push_back(fmt::format("ifNull(toString({}), '')", e));
    }
    return fmt::format("cityHash64({})", fmt::join(args, ", "));
  }

  struct Intent {
    std::string mode;       // what changes the target, for messages
    std::string check_sql;  // one value, read after the change
    std::string landed;     // the value when the change landed
    std::string unchanged;  // the value when it did not ("": any other value)
  };

  // Promotes (live) or lists the statements (plans). Every strategy: schema changes, the
  // intent, the receipt compare-and-set, the change of the target, the receipt, and the
  // intent dropped (README.md "Concurrent writers and crash safety").
  void run_promotion(Client& db, Plan& plan, const PromoteRequest& request,
                     std::vector<std::string>& log) {
    const StrategySpec& strategy = request.strategy;
    const Schema& schema = request.source_schema;
    const auto& changes = request.changes;
    const std::string target = qualified(table_);
    const std::string shadow = qualified(shadow_name());
    const std::string stg = qualified(plan.staging);
    const std::string cols = join_quoted(schema.names());
    auto exec = [&](const std::string& sql, const ch::Settings& settings = {}) {
      log.push_back(sql);
      if (plan.live) db.exec(sql, settings);
    };
    auto count = [&](const std::string& sql) -> int64_t {
      log.push_back(sql);
      return plan.live ? db.int64(sql) : 0;
    };
    auto value = [&](const std::string& sql) -> std::string {
      log.push_back(sql);
      return plan.live ? db.value(sql).value_or("") : "";
    };
    // Statements that change the target carry this run's query_id (wait_queries()).
    auto change = [&](const std::string& sql) {
      plan.target_touched = plan.live;
      exec(sql, {{"query_id", query_id("change")}});
    };
    auto insert_staged = [&](const std::string& into, const std::string& where) {
      std::string sql =
          fmt::format("INSERT INTO {} ({}) SELECT {} FROM {}{}", into, cols, cols, stg, where);
      if (into == target) {
        change(sql);
      } else {
        exec(sql);
      }
    };
    auto delete_where = [&](const std::string& cond) {
      change(fmt::format("ALTER TABLE {} DELETE WHERE {}", target, cond));
      log.push_back("-- wait until system.mutations shows the DELETE done");
      if (plan.live) wait_mutations(db, table_);
    };
    bool ddl = std::any_of(changes.begin(), changes.end(), [](const SchemaChange* c) {
      return c->kind != ChangeKind::MakeNotNull;
    });
    bool attach_staging = plan.same_as_target && !ddl;

    Intent intent;
    std::string fp_target, fp_staged;  // row fingerprints (live strategies)
    std::string insert_where;          // append with only_new_rows: the rows to insert
    const bool swap = !plan.exists || strategy.mode == StrategyMode::FullRefresh;
    if (swap) {
      // The complete table is built beside the target and renamed in.
      if (!plan.exists) {
        exec(fmt::format("RENAME TABLE {} TO {}", stg, shadow));  // created with the target's DDL
      } else {
        plan.deleted = count("SELECT count() FROM " + target);
        if (attach_staging || !plan.live) {
          exec(fmt::format("RENAME TABLE {} TO {}", stg, shadow));
        } else {
          exec(fmt::format("CREATE TABLE {} AS {}", shadow, target));
          for (const auto& sql : ddl_for(schema, changes, shadow)) exec(sql);
          insert_staged(shadow, "");
        }
      }
      plan.inserted = plan.live ? plan.staged_rows : 0;
      intent = {plan.exists ? "full_refresh swap" : "first load",
                fmt::format("SELECT toString(count()) FROM system.tables WHERE database = {} AND "
                            "name = {}",
                            quote_literal(db_), quote_literal(shadow_name())),
                "0", "1"};
    } else {
      for (const auto& sql : ddl_for(schema, changes, target)) exec(sql);
      // The landed checks compare rows as the target types them.
      std::map<std::string, std::string> stg_types, target_types;
      if (plan.live) {
        for (const auto& c : ch::table_columns(db, db_, plan.staging)) stg_types[c.name] = c.type;
        for (const auto& c : ch::table_columns(db, db_, table_)) target_types[c.name] = c.type;
      }
      std::vector<std::string> t_exprs, s_exprs;
      for (const auto& c : schema.names()) {
        t_exprs.push_back(quote_ident(c));
        s_exprs.push_back(as_target(c, stg_types, target_types));
      }
      fp_target = fingerprint(t_exprs);
      fp_staged = fingerprint(s_exprs);
      // Merge, replace, partition_replace: the change landed when the slice of the target
      // it rewrote holds exactly the staged rows (count and sum of fingerprints).
      auto slice_intent = [&](const char* mode, const std::string& slice) {
        const char* digest = "concat(toString(count()), ':', toString(sum({})))";
        std::string expect = value(
            fmt::format("SELECT {} FROM {}", fmt::format(fmt::runtime(digest), fp_staged), stg));
        return Intent{mode,
                      fmt::format("SELECT {} FROM {} WHERE {}",
                                  fmt::format(fmt::runtime(digest), fp_target), target, slice),
                      expect, ""};
      };
      switch (strategy.mode) {
        case StrategyMode::Append: {
          int64_t adds = plan.staged_rows;
          if (strategy.only_new_rows) {
            const std::string k = key_tuple(strategy.unique_key);
            insert_where = fmt::format(" WHERE {} NOT IN (SELECT {} FROM {})", k, k, target);
            adds = count(fmt::format("SELECT count() FROM {}{}", stg, insert_where));
          }
          // Landed: the target holds `adds` more rows equal to a staged row than before.
          std::string range;
          if (plan.live) {
            std::string k = first_sort_column(db, schema.names());
            if (!k.empty()) {
              std::string ks = as_target(k, stg_types, target_types);
              range = fmt::format(
                  "{0} >= (SELECT min({1}) FROM {2}) AND {0} <= (SELECT max({1}) "
                  "FROM {2}) AND ",
                  quote_ident(k), ks, stg);
            }
          }
          std::string check =
              fmt::format("SELECT toString(count()) FROM {} WHERE {}{} IN (SELECT {} FROM {})",
                          target, range, fp_target, fp_staged, stg);
          int64_t before = count(check);
          intent = {"append", check, std::to_string(before + adds), std::to_string(before)};
          plan.inserted = plan.live ? adds : 0;
          break;
        }
        case StrategyMode::Merge: {
          const std::string k = key_tuple(strategy.unique_key);
          const std::string in_staging = fmt::format("{} IN (SELECT {} FROM {})", k, k, stg);
          plan.updated = count(fmt::format("SELECT count() FROM {} WHERE {}", target, in_staging));
          intent = slice_intent("merge", in_staging);
          plan.inserted = plan.live ? plan.staged_rows - plan.updated : 0;
          break;
        }
        case StrategyMode::Replace: {
          const std::string pred = strategy.raw["where"].get<std::string>();
          // A row where the predicate is NULL does not satisfy it either.
          int64_t outside =
              count(fmt::format("SELECT count() FROM {} WHERE NOT ifNull(({}), 0)", stg, pred));
          if (outside > 0) {
            throw Error(ErrorCode::PromoteFailed,
                        fmt::format("{}: {} staged rows do not satisfy the replace predicate "
                                    "`where: {}`; the target was not changed",
                                    where_, outside, pred),
                        "narrow the source window to the slice, or widen `where`");
          }
          plan.deleted = count(fmt::format("SELECT count() FROM {} WHERE {}", target, pred));
          intent = slice_intent("replace", pred);
          plan.inserted = plan.live ? plan.staged_rows : 0;
          break;
        }
        case StrategyMode::PartitionReplace: {
          auto parts = partitions_of(db, plan.staging, plan.live);
          int64_t max_parts = strategy.raw.value("max_partitions_per_run", int64_t{0});
          if (max_parts > 0 && static_cast<int64_t>(parts.size()) > max_parts) {
            throw Error(ErrorCode::PromoteFailed,
                        fmt::format("{}: the load touches {} partitions, more than "
                                    "max_partitions_per_run ({})",
                                    where_, parts.size(), max_parts),
                        "raise max_partitions_per_run or load a narrower window");
          }
          for (const auto& p : parts)
            plan.deleted += count(fmt::format(
                "SELECT sum(rows) FROM system.parts WHERE database = {} AND table = {} AND active "
                "AND partition_id = {}",
                quote_literal(db_), quote_literal(table_), quote_literal(p)));
          intent =
              slice_intent("partition_replace", fmt::format("({}) IN (SELECT DISTINCT {} FROM {})",
                                                            partition_by_, partition_by_, stg));
          plan.inserted = plan.live ? plan.staged_rows : 0;
          break;
        }
        default:
          check_strategy(strategy, schema);
      }
    }

    // The receipts table exists before the intent, so the receipt cannot fail on DDL.
    const std::string loads = qualified(loads_name());
    exec(
        fmt::format("CREATE TABLE IF NOT EXISTS {} ({}) ENGINE = MergeTree ORDER BY (stream, "
                    "run_id)",
                    loads, kReceiptColumns));
    LoadReceipt r = request.receipt;
    if (r.stream.empty()) r.stream = stream_;
    if (r.run_id.empty()) r.run_id = run_id_;
    if (r.loaded_at.empty()) r.loaded_at = now_iso8601();
    const std::string receipt_values =
        fmt::format("{}, {}, {}, {}, {}, {}, {}", quote_literal(r.stream), quote_literal(r.run_id),
                    r.base_revision, quote_literal(r.window.dump()),
                    quote_literal(r.new_position.dump()), r.rows, quote_literal(r.loaded_at));
    const std::string pending = qualified(pending_name(suffix()));
    exec(
        fmt::format("CREATE TABLE {} ({}, mode String, staging String, check_sql String, landed "
                    "String, unchanged String) ENGINE = MergeTree ORDER BY tuple()",
                    pending, kReceiptColumns));
    if (plan.live) {
      exec(fmt::format("INSERT INTO {} VALUES ({}, {}, {}, {}, {}, {})", pending, receipt_values,
                       quote_literal(intent.mode), quote_literal(plan.staging),
                       quote_literal(intent.check_sql), quote_literal(intent.landed),
                       quote_literal(intent.unchanged)));
      check_receipts(db, request.expected_latest_receipt);
    } else {
      log.push_back(
          fmt::format("INSERT INTO {} VALUES (<the receipt>, <how to tell whether the "
                      "change landed: {}>)",
                      pending, intent.check_sql));
      log.push_back(
          "-- compare-and-set: no other intent of the stream, its newest receipt is "
          "the one planned with");
    }

    // The change of the target.
    if (swap) {
      if (plan.exists) {
        plan.target_touched = plan.live;
        exec(fmt::format("RENAME TABLE {} TO {}, {} TO {}", target, qualified(old_name()), shadow,
                         target));
      } else {
        plan.target_touched = plan.live;
        exec(fmt::format("RENAME TABLE {} TO {}", shadow, target));
      }
    } else {
      // Merge and replace insert first and then delete the rows the staged ones replace: a
      // reader, and a crash between the two, may find a key's old and new version, never
      // neither. Staged rows equal to a row of the slice are not inserted again, and the
      // DELETE keeps every row equal to a staged one, so a re-run converges.
      auto rewrite_slice = [&](const std::string& slice) {
        insert_staged(target, fmt::format(" WHERE {} NOT IN (SELECT {} FROM {} WHERE {})",
                                          fp_staged, fp_target, target, slice));
        delete_where(fmt::format("({}) AND {} NOT IN (SELECT {} FROM {})", slice, fp_target,
                                 fp_staged, stg));
      };
      switch (strategy.mode) {
        case StrategyMode::Append:
          if (!plan.live || plan.staged_rows > 0) insert_staged(target, insert_where);
          break;
        case StrategyMode::Merge: {
          const std::string k = key_tuple(strategy.unique_key);
          rewrite_slice(fmt::format("{} IN (SELECT {} FROM {})", k, k, stg));
          break;
        }
        case StrategyMode::Replace:
          rewrite_slice(strategy.raw["where"].get<std::string>());
          break;
        case StrategyMode::PartitionReplace: {
          auto parts = partitions_of(db, plan.staging, plan.live);
          for (const auto& p : parts) {
            change(fmt::format("ALTER TABLE {} {} PARTITION ID {}{}", target,
                               attach_staging ? "REPLACE" : "DROP", quote_literal(p),
                               attach_staging ? " FROM " + stg : ""));
          }
          if (!attach_staging) insert_staged(target, "");
          break;
        }
        default:
          break;
      }
    }
    if (plan.live) failpoint("inside_promote");

    // The receipt, then the intent goes.
    if (plan.live) {
      exec(fmt::format("INSERT INTO {} ({}) VALUES ({})", loads, kReceiptNames, receipt_values));
    } else {
      log.push_back(fmt::format("INSERT INTO {} VALUES (<the load receipt>)", loads));
    }
    exec("DROP TABLE IF EXISTS " + pending);
    if (swap && plan.exists) exec("DROP TABLE IF EXISTS " + qualified(old_name()));
  }

  // The receipt compare-and-set (PromoteRequest::expected_latest_receipt), after this run's
  // intent is written: no other intent of the stream may exist, and the newest receipt must
  // be the one the run planned with. Intents are read before receipts: a run that finished
  // in between inserted its receipt before it dropped its intent, so one of the two reads
  // sees it. Two runs that both write an intent cannot both pass.
  void check_receipts(Client& db, const std::string& expected) {
    std::string other;
    for (const auto& name : dpone_tables(db)) {
      if (name.rfind(pending_prefix(), 0) != 0 || name == pending_name(suffix())) continue;
      ch::Rows r = db.rows("SELECT stream, run_id FROM " + qualified(name));
      if (!r.empty() && r[0].size() == 2 && r[0][0] == stream_) other = r[0][1];
    }
    std::string latest;
    if (other.empty()) {
      if (auto v = db.value(fmt::format("SELECT run_id FROM {} WHERE stream = {} ORDER BY "
                                        "loaded_at DESC, run_id DESC LIMIT 1",
                                        qualified(loads_name()), quote_literal(stream_))))
        latest = *v;
    }
    if (!other.empty() || latest != expected) {
      drop_quietly(db, pending_name(suffix()));
      if (!other.empty())
        throw Error(ErrorCode::StateConflict,
                    fmt::format("{}: run {} of stream '{}' is promoting into {}.{} too (its intent "
                                "{}.{}{} exists); this run changed nothing",
                                where_, other, stream_, db_, table_, db_, pending_prefix(),
                                ch::sanitize_run_id(other)),
                    "one run per stream at a time: the stream lease prevents this unless it was "
                    "bypassed; re-run after the other run ends");
      throw_receipt_conflict(where_, stream_, latest, expected);
    }
  }

  nlohmann::json parse_json(const std::string& text, const std::string& run_id) const {
    try {
      return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::SinkUnavailable,
                  fmt::format("{}: the load receipt of run {} in {}.{} is not valid JSON ({})",
                              where_, run_id, db_, loads_name(), e.what()),
                  "delete that row and re-run");
    }
  }

  std::string stream_;
  std::string run_id_;
  Diagnostics* diagnostics_;
  std::function<void(int64_t, int64_t)> on_progress_;
  std::string where_;
  ch::Endpoint endpoint_;
  std::string table_;
  std::string db_;
  std::vector<std::string> order_by_;
  std::string partition_by_;
  ch::TypePolicy policy_;
  std::string pg_copy_format_;  // auto (binary preferred) or text
  double mutation_timeout_s_ = 600;
  std::unique_ptr<Client> client_;
  std::optional<ch::ServerFeatures> features_;
  bool keep_staging_ = false;  // an undecided promotion's intent names the staging
  std::set<std::string> warned_;
};

}  // namespace

std::unique_ptr<Sink> make_clickhouse_sink(const SinkContext& context) {
  return std::make_unique<ChSink>(context);
}

}  // namespace dpone
