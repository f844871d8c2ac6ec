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
//   promote  -> every strategy builds the complete next generation of the target in a
//               shadow table `<table>__dpone_new_<run>` (the target's parts are shared by
//               hard links through ATTACH PARTITION ... FROM, so nothing is copied), and
//               the next generation of the receipts table `<table>__dpone__loads` beside
//               it; one multi-table RENAME then swaps receipts and data together.
//               ClickHouse has no transactions: README.md "Crash safety" gives the argument
//               and repair_swap() completes or undoes a swap a crash interrupted.
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
constexpr const char* kLoadsSuffix = "__dpone__loads";
constexpr const char* kLoadsNewInfix = "__dpone__loads_new_";
constexpr const char* kLoadsOldInfix = "__dpone__loads_old_";

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
    repair_swap(db);
    TargetInfo info;
    info.name = db_ + "." + table_;
    info.server = "ClickHouse " + db.version();
    const ch::ServerFeatures& f = features();
    info.capabilities = {
        "HTTP INSERT ... FORMAT TabSeparated, streamed (chunked)",
        "pg_copy_binary and pg_copy_text transcoding",
        f.exchange ? "EXCHANGE TABLES available (dpone swaps with RENAME)"
                   : "multi-table RENAME swap (no EXCHANGE TABLES)",
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
    run_promotion(db, plan, strategy, source_schema, {}, nullptr, out);
    return out;
  }

  std::optional<LoadReceipt> latest_receipt() override {
    Client& db = client(ErrorCode::SinkUnavailable);
    repair_swap(db);
    if (!ch::table_exists(db, db_, loads_name())) return std::nullopt;
    ch::Rows r = db.rows(fmt::format(
        "SELECT stream, run_id, base_revision, window, new_position, rows, loaded_at FROM {} "
        "WHERE stream = {} ORDER BY loaded_at DESC, run_id DESC LIMIT 1",
        qualified(loads_name()), quote_literal(stream_)));
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
    std::vector<std::string> removed = repair_swap(db);
    const std::string mine = ch::sanitize_run_id(run_id_);
    for (const auto& name : dpone_tables(db)) {
      if (name == loads_name()) continue;
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
      run_promotion(db, plan, request.strategy, request.source_schema, request.changes,
                    &request.receipt, result.sql);
    } catch (...) {
      drop_quietly(db, shadow_name());
      drop_quietly(db, loads_new_name());
      throw;
    }
    result.inserted = plan.inserted;
    result.updated = plan.updated;
    result.deleted = plan.deleted;
    // One RENAME swaps data and receipt; an interrupted swap is completed or undone by
    // the next run before it reads receipts (README.md "Crash safety").
    result.atomic = true;
    return result;
  }

  void abort(const StagedLoad& staged) noexcept override {
    try {
      Client& db = client(ErrorCode::SinkUnavailable);
      db.exec("DROP TABLE IF EXISTS " + qualified(staged.staging_name));
    } catch (const std::exception& e) {
      warn_staging_left(diagnostics_, where_, staged.staging_name, e);
    }
  }

 private:
  struct Plan {
    bool live = false;
    bool exists = false;
    bool same_as_target = false;
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
  std::string loads_new_name() const { return table_ + kLoadsNewInfix + suffix(); }
  std::string loads_old_name() const { return table_ + kLoadsOldInfix + suffix(); }

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

  // Completes or undoes a swap that a crash interrupted (README.md "Crash safety"). The
  // receipt decides: a shadow whose run has a receipt was promoted and is renamed in; any
  // other shadow is dropped. Runs before receipts are read. Returns what it changed.
  std::vector<std::string> repair_swap(Client& db) {
    if (repaired_) return {};
    repaired_ = true;
    std::vector<std::string> done;
    auto tables = dpone_tables(db);
    std::set<std::string> names(tables.begin(), tables.end());
    bool loads = names.count(loads_name()) > 0;
    const std::string old_loads_prefix = table_ + kLoadsOldInfix;
    if (!loads) {
      for (const auto& n : tables) {
        if (n.rfind(old_loads_prefix, 0) == 0) {
          db.exec(fmt::format("RENAME TABLE {} TO {}", qualified(n), qualified(loads_name())));
          done.push_back(
              fmt::format("{}.{} renamed back to {} (swap interrupted before its receipt)", db_, n,
                          loads_name()));
          loads = true;
          break;
        }
      }
    }
    std::set<std::string> promoted;
    if (loads) {
      for (auto& r : db.rows("SELECT DISTINCT run_id FROM " + qualified(loads_name())))
        promoted.insert(ch::sanitize_run_id(r[0]));
    }
    const std::string shadow_prefix = table_ + kShadowInfix;
    for (const auto& n : tables) {
      if (n.rfind(shadow_prefix, 0) != 0) continue;
      std::string run = n.substr(shadow_prefix.size());
      if (!promoted.count(run)) continue;
      // The receipt of `run` is committed: its generation must be the target.
      std::string old = table_ + kOldInfix + run;
      if (ch::table_exists(db, db_, table_)) {
        db.exec(fmt::format("RENAME TABLE {} TO {}, {} TO {}", qualified(table_), qualified(old),
                            qualified(n), qualified(table_)));
      } else {
        db.exec(fmt::format("RENAME TABLE {} TO {}", qualified(n), qualified(table_)));
      }
      db.exec("DROP TABLE IF EXISTS " + qualified(old));
      done.push_back(fmt::format("{}.{}: completed the swap of run {} (its receipt was committed)",
                                 db_, table_, run));
    }
    return done;
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

  // Builds the next generation in the shadow and the receipts beside it, then swaps.
  // Not live (plans): only lists the statements.
  void run_promotion(Client& db, Plan& plan, const StrategySpec& strategy, const Schema& schema,
                     const std::vector<const SchemaChange*>& changes, const LoadReceipt* receipt,
                     std::vector<std::string>& log) {
    const std::string target = qualified(table_);
    const std::string shadow = qualified(shadow_name());
    const std::string stg = qualified(plan.staging);
    const std::string cols = join_quoted(schema.names());
    auto exec = [&](const std::string& sql) {
      log.push_back(sql);
      if (plan.live) db.exec(sql);
    };
    auto count = [&](const std::string& sql) -> int64_t {
      log.push_back(sql);
      return plan.live ? db.int64(sql) : 0;
    };
    auto insert_staged = [&](const std::string& where) {
      exec(fmt::format("INSERT INTO {} ({}) SELECT {} FROM {}{}", shadow, cols, cols, stg, where));
    };
    bool ddl = std::any_of(changes.begin(), changes.end(), [](const SchemaChange* c) {
      return c->kind != ChangeKind::MakeNotNull;
    });
    bool attach_staging = plan.same_as_target && !ddl;
    auto add_staged = [&]() {
      if (attach_staging) {
        for (const auto& p : partitions_of(db, plan.staging, plan.live))
          exec(fmt::format("ALTER TABLE {} ATTACH PARTITION ID {} FROM {}", shadow,
                           quote_literal(p), stg));
      } else {
        insert_staged("");
      }
    };
    auto shadow_with_target = [&]() {
      exec(fmt::format("CREATE TABLE {} AS {}", shadow, target));
      for (const auto& p : partitions_of(db, table_, plan.live))
        exec(fmt::format("ALTER TABLE {} ATTACH PARTITION ID {} FROM {}", shadow, quote_literal(p),
                         target));
      for (const auto& sql : ddl_for(schema, changes, shadow)) exec(sql);
    };
    auto delete_where = [&](const std::string& cond) {
      exec(fmt::format("ALTER TABLE {} DELETE WHERE {}", shadow, cond));
      log.push_back("-- wait until system.mutations shows the DELETE done");
      if (plan.live) wait_mutations(db, shadow_name());
    };

    if (!plan.exists) {
      // First load: the staging table was created with the target's DDL.
      exec(fmt::format("RENAME TABLE {} TO {}", stg, shadow));
      plan.inserted = plan.live ? plan.staged_rows : 0;
    } else {
      switch (strategy.mode) {
        case StrategyMode::FullRefresh:
          plan.deleted = count("SELECT count() FROM " + target);
          if (attach_staging || !plan.live) {
            exec(fmt::format("RENAME TABLE {} TO {}", stg, shadow));
          } else {
            exec(fmt::format("CREATE TABLE {} AS {}", shadow, target));
            for (const auto& sql : ddl_for(schema, changes, shadow)) exec(sql);
            insert_staged("");
          }
          plan.inserted = plan.staged_rows;
          break;
        case StrategyMode::Append:
          shadow_with_target();
          if (strategy.only_new_rows) {
            const std::string k = key_tuple(strategy.unique_key);
            insert_staged(fmt::format(" WHERE {} NOT IN (SELECT {} FROM {})", k, k, target));
            plan.inserted =
                count("SELECT count() FROM " + shadow) - count("SELECT count() FROM " + target);
          } else {
            add_staged();
            plan.inserted = plan.staged_rows;
          }
          break;
        case StrategyMode::Merge: {
          const std::string k = key_tuple(strategy.unique_key);
          const std::string in_staging = fmt::format("{} IN (SELECT {} FROM {})", k, k, stg);
          plan.updated = count(fmt::format("SELECT count() FROM {} WHERE {}", target, in_staging));
          shadow_with_target();
          delete_where(in_staging);
          add_staged();
          plan.inserted = plan.staged_rows - plan.updated;
          break;
        }
        case StrategyMode::Replace: {
          const std::string pred = strategy.raw["where"].get<std::string>();
          plan.deleted = count(fmt::format("SELECT count() FROM {} WHERE {}", target, pred));
          shadow_with_target();
          delete_where(pred);
          add_staged();
          plan.inserted = plan.staged_rows;
          break;
        }
        case StrategyMode::PartitionReplace: {
          shadow_with_target();
          auto parts = partitions_of(db, plan.staging, plan.live);
          int64_t max_parts = strategy.raw.value("max_partitions_per_run", int64_t{0});
          if (max_parts > 0 && static_cast<int64_t>(parts.size()) > max_parts) {
            throw Error(ErrorCode::PromoteFailed,
                        fmt::format("{}: the load touches {} partitions, more than "
                                    "max_partitions_per_run ({})",
                                    where_, parts.size(), max_parts),
                        "raise max_partitions_per_run or load a narrower window");
          }
          for (const auto& p : parts) {
            plan.deleted += count(fmt::format(
                "SELECT sum(rows) FROM system.parts WHERE database = {} AND table = {} AND active "
                "AND partition_id = {}",
                quote_literal(db_), quote_literal(table_), quote_literal(p)));
            if (attach_staging) {
              exec(fmt::format("ALTER TABLE {} REPLACE PARTITION ID {} FROM {}", shadow,
                               quote_literal(p), stg));
            } else {
              exec(fmt::format("ALTER TABLE {} DROP PARTITION ID {}", shadow, quote_literal(p)));
            }
          }
          if (!attach_staging) insert_staged("");
          plan.inserted = plan.staged_rows;
          break;
        }
        default:
          check_strategy(strategy, schema);
      }
    }

    // The next generation of the receipts, beside the data.
    const std::string loads = qualified(loads_name());
    const std::string loads_new = qualified(loads_new_name());
    bool loads_exist = plan.live ? ch::table_exists(db, db_, loads_name()) : true;
    if (loads_exist) {
      exec(fmt::format("CREATE TABLE {} AS {}", loads_new, loads));
      exec(fmt::format("INSERT INTO {} SELECT * FROM {}", loads_new, loads));
    } else {
      exec(
          fmt::format("CREATE TABLE {} (stream String, run_id String, base_revision Int64, "
                      "window String, new_position String, rows Int64, loaded_at String) "
                      "ENGINE = MergeTree ORDER BY (stream, run_id)",
                      loads_new));
    }
    if (plan.live && receipt) {
      LoadReceipt r = *receipt;
      if (r.stream.empty()) r.stream = stream_;
      if (r.run_id.empty()) r.run_id = run_id_;
      if (r.loaded_at.empty()) r.loaded_at = now_iso8601();
      exec(fmt::format("INSERT INTO {} VALUES ({}, {}, {}, {}, {}, {}, {})", loads_new,
                       quote_literal(r.stream), quote_literal(r.run_id), r.base_revision,
                       quote_literal(r.window.dump()), quote_literal(r.new_position.dump()), r.rows,
                       quote_literal(r.loaded_at)));
    } else {
      log.push_back(fmt::format("INSERT INTO {} VALUES (<the load receipt>)", loads_new));
    }
    if (plan.live) failpoint("inside_promote");

    // The swap: receipts first, data last (repair_swap() relies on this order).
    std::vector<std::string> renames;
    if (loads_exist) renames.push_back(fmt::format("{} TO {}", loads, qualified(loads_old_name())));
    renames.push_back(fmt::format("{} TO {}", loads_new, loads));
    if (plan.exists) renames.push_back(fmt::format("{} TO {}", target, qualified(old_name())));
    renames.push_back(fmt::format("{} TO {}", shadow, target));
    exec(fmt::format("RENAME TABLE {}", fmt::join(renames, ", ")));
    if (plan.exists) exec("DROP TABLE IF EXISTS " + qualified(old_name()));
    if (loads_exist) exec("DROP TABLE IF EXISTS " + qualified(loads_old_name()));
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
  bool repaired_ = false;
  std::set<std::string> warned_;
};

}  // namespace

std::unique_ptr<Sink> make_clickhouse_sink(const SinkContext& context) {
  return std::make_unique<ChSink>(context);
}

}  // namespace dpone
