// The postgres source: a table (or one SELECT) read in full, by a cursor column, or by
// transaction id (xmin), always through COPY (SELECT ...) TO STDOUT in text format,
// decoded row by row into RecordBatches of ExtractOptions::batch_rows rows (memory is
// bounded by one batch plus libpq's one-row buffer), or, for a sink that takes
// pg_copy_text (pass-through), handed on as the raw COPY bytes without decoding.
//
// Windows:
//   full   - everything; no position.
//   cursor - high = max(cursor) read at plan time and fixed for the run; the run reads
//            cursor > low [- lookback] AND cursor <= high. Positions keep the server's
//            text of the value (integers as JSON integers). On a table (late_commits:
//            reread, the default) the window is planned and read in one REPEATABLE READ
//            snapshot, kept in the position (`snapshot`, txid_current_snapshot() text);
//            the next window also reads the rows at or below low whose transaction was
//            still running at that snapshot (it committed after the previous read: a
//            late commit, which a cursor alone never sees again). Each such row is read
//            once: rows visible at the stored snapshot were read then.
//   xmin   - plan_window() opens a REPEATABLE READ READ ONLY transaction and keeps it
//            open until the reader has delivered the last row, so the position and
//            the rows come from the same snapshot. The position is the snapshot's
//            xmin as a 64-bit (epoch-extended) transaction id: every transaction below
//            it had finished when the snapshot was taken. The next run reads the rows
//            whose 32-bit xmin, extended with the epoch of the new snapshot (and moved
//            back one epoch when that would put it in the future), is >= the stored
//            value. Limits (README.md): deleted rows are never seen; rows of
//            transactions still running at the previous snapshot are read again;
//            rows whose xmin is ~2^31 transactions old (frozen long ago) can be
//            dated into the current epoch and read again. Meant for merge.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <set>

#include "connectors/postgres/pg_connector.hpp"
#include "connectors/postgres/pg_internal_query.hpp"
#include "core/errors.hpp"

namespace dpone {

namespace {

using pg::PgConnection;
using pg::PgResult;
using pg::quote_ident;

enum class Mode { Full, Cursor, Xmin };

struct SourceColumn {
  Column column;
  pg::PgColumnType pg;
};

[[noreturn]] void rethrow_at(const Error& e, const std::string& where, int64_t row,
                             const std::string& column) {
  throw Error(e.code(), fmt::format("{}: row {} column '{}': {}", where, row, column, e.what()),
              e.hint());
}

class PgBatchReader : public BatchReader {
 public:
  PgBatchReader(std::shared_ptr<PgConnection> conn, const std::string& copy_sql,
                std::vector<SourceColumn> columns, Schema schema, size_t batch_rows,
                bool commit_at_end, std::string where)
      : conn_(std::move(conn)),
        columns_(std::move(columns)),
        schema_(std::move(schema)),
        batch_rows_(batch_rows == 0 ? 8192 : batch_rows),
        commit_at_end_(commit_at_end),
        where_(std::move(where)) {
    conn_->copy_out_start(copy_sql);
  }

  const Schema& schema() const override { return schema_; }

  std::optional<RecordBatch> next() override {
    if (done_) return std::nullopt;
    const size_t ncols = columns_.size();
    RecordBatch batch(ncols);
    size_t rows = 0;
    std::string_view line;
    while (rows < batch_rows_) {
      if (!conn_->copy_out_row(line)) {
        done_ = true;
        if (commit_at_end_) conn_->exec("COMMIT");
        break;
      }
      ++row_;
      size_t col = 0;
      size_t fields = pg::split_copy_line(line, scratch_, [&](std::string_view v, bool null) {
        if (col >= ncols) {
          ++col;
          return;
        }
        const SourceColumn& c = columns_[col];
        if (null) {
          batch.append_null();
        } else if (c.pg.read == pg::ReadKind::Text) {
          batch.append(v);
        } else {
          cell_.clear();
          try {
            pg::append_canonical(cell_, c.pg.read, v);
          } catch (const Error& e) {
            rethrow_at(e, where_, row_, c.column.name);
          }
          batch.append(cell_);
        }
        ++col;
      });
      if (fields != ncols) {
        throw Error(ErrorCode::SourceReadFailed,
                    fmt::format("{}: row {} has {} fields, {} columns were discovered", where_,
                                row_, fields, ncols),
                    "re-run the stream (the table may have changed during the run)");
      }
      ++rows;
    }
    if (rows == 0) return std::nullopt;
    return batch;
  }

 private:
  std::shared_ptr<PgConnection> conn_;
  std::vector<SourceColumn> columns_;
  Schema schema_;
  size_t batch_rows_;
  bool commit_at_end_;
  std::string where_;
  std::string scratch_;
  std::string cell_;
  int64_t row_ = 0;
  bool done_ = false;
};

// Pass-through (README.md "Pass-through"): the COPY OUT data as it comes, text or
// binary, never decoded. Memory: libpq's current row plus the caller's buffer.
class PgCopyReader : public ByteReader {
 public:
  PgCopyReader(std::shared_ptr<PgConnection> conn, const std::string& copy_sql,
                   bool commit_at_end)
      : conn_(std::move(conn)), commit_at_end_(commit_at_end) {
    conn_->copy_out_start(copy_sql);
  }

  size_t read(char* buffer, size_t size) override {
    size_t n = 0;
    while (n < size) {
      if (pending_.empty()) {
        if (done_) break;
        // pending_ views libpq's row buffer, valid until the next copy_out_row().
        if (!conn_->copy_out_row(pending_)) {
          pending_ = {};
          done_ = true;
          if (commit_at_end_) conn_->exec("COMMIT");
          break;
        }
        continue;
      }
      size_t k = std::min(size - n, pending_.size());
      std::memcpy(buffer + n, pending_.data(), k);
      pending_.remove_prefix(k);
      n += k;
    }
    return n;
  }

 private:
  std::shared_ptr<PgConnection> conn_;
  bool commit_at_end_;
  std::string_view pending_;
  bool done_ = false;
};

class EmptyByteReader : public ByteReader {
 public:
  size_t read(char*, size_t) override { return 0; }
};

class EmptyBatchReader : public BatchReader {
 public:
  explicit EmptyBatchReader(Schema schema) : schema_(std::move(schema)) {}
  const Schema& schema() const override { return schema_; }
  std::optional<RecordBatch> next() override { return std::nullopt; }

 private:
  Schema schema_;
};

constexpr int kMaxParallel = 16;

// The type a column is sent as in binary COPY: its own, except blank-padded char(n),
// which is sent as text with its padding (casting bpchar to another type strips it, and
// the other paths load the padded text).
std::string binary_wire_type(const pg::PgColumnType& t) {
  if (t.pg_name == "character" || t.pg_name == "bpchar" || t.pg_name.rfind("character(", 0) == 0)
    return "text";
  return t.pg_name;
}

bool is_integer_type(const LogicalType& t) {
  return t.id == TypeId::Int16 || t.id == TypeId::Int32 || t.id == TypeId::Int64;
}
bool is_numeric_type(const LogicalType& t) {
  return is_integer_type(t) || t.id == TypeId::Decimal || t.id == TypeId::Float32 ||
         t.id == TypeId::Float64;
}
bool is_temporal_type(const LogicalType& t) {
  return t.id == TypeId::Date || t.id == TypeId::Timestamp;
}

class PgSource : public Source {
 public:
  explicit PgSource(const SourceContext& ctx) : diagnostics_(ctx.diagnostics) {
    pg::Options options(ctx.options, fmt::format("stream '{}': postgres source", ctx.stream));
    where_ = options.where();
    connection_ = pg::require_connection(ctx.connection, where_);
    table_ = options.string("table").value_or("");
    query_ = options.string("query").value_or("");
    while (!query_.empty() &&
           (query_.back() == ';' || std::isspace(static_cast<unsigned char>(query_.back())))) {
      query_.pop_back();
    }
    schema_name_ = options.string("schema").value_or("public");
    cursor_ = options.string("cursor").value_or("");
    lookback_ = options.string_or_integer("lookback").value_or("");
    const std::string late = options.string("late_commits").value_or("reread");
    if (late != "reread" && late != "ignore") {
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("{}: `late_commits` must be reread or ignore, not '{}'", where_, late));
    }
    reread_late_commits_ = late == "reread";
    primary_key_ = options.string_list("primary_key");
    if (auto par = options.string_or_integer("parallel")) {
      int n = 0;
      auto [end, ec] = std::from_chars(par->data(), par->data() + par->size(), n);
      if (ec != std::errc() || end != par->data() + par->size() || n < 1 || n > kMaxParallel) {
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: `parallel` must be an integer from 1 to {}, not '{}'", where_,
                                kMaxParallel, *par));
      }
      parallel_ = n;
    }
    split_by_ = options.string("split_by").value_or("auto");
    if (split_by_ != "auto" && split_by_ != "key" && split_by_ != "ctid") {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: `split_by` must be auto, key or ctid, not '{}'", where_, split_by_));
    }
    std::string mode = options.string("incremental").value_or(cursor_.empty() ? "full" : "cursor");
    if (mode == "full") {
      mode_ = Mode::Full;
    } else if (mode == "cursor") {
      mode_ = Mode::Cursor;
    } else if (mode == "xmin") {
      mode_ = Mode::Xmin;
    } else {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{} option `incremental` is '{}'; the postgres source supports "
                              "full, cursor and xmin",
                              where_, mode));
    }
    if (table_.empty() == query_.empty()) {
      throw Error(ErrorCode::ConfigInvalid,
                  fmt::format("{} needs exactly one of the options `table` and `query`", where_),
                  "`table: name` reads a table or view; `query: SELECT ...` reads one query");
    }
    if (mode_ == Mode::Cursor && cursor_.empty()) {
      throw Error(ErrorCode::ConfigMissingKey,
                  fmt::format("{}: incremental: cursor needs the `cursor` option (the column "
                              "whose growth marks new rows)",
                              where_));
    }
    if (mode_ != Mode::Cursor && !cursor_.empty()) {
      throw Error(
          ErrorCode::ConfigInvalid,
          fmt::format("{}: `cursor: {}` is set but `incremental` is {}", where_, cursor_, mode));
    }
    if (mode_ != Mode::Cursor && !lookback_.empty()) {
      throw Error(ErrorCode::ConfigInvalid,
                  fmt::format("{}: `lookback` only applies to incremental: cursor", where_));
    }
    if (mode_ == Mode::Xmin && !query_.empty()) {
      throw Error(ErrorCode::ConfigInvalid,
                  fmt::format("{}: incremental: xmin reads a table's row versions; it cannot "
                              "read a `query`",
                              where_),
                  "name the table with `table:` or use incremental: cursor");
    }
    object_ = table_.empty() ? std::string("query") : schema_name_ + "." + table_;
    internal_query_ = pg::internal_query_option(ctx.options, where_);
  }

  Window plan_window(const nlohmann::json& position) override {
    position_ = position;
    if (mode_ == Mode::Xmin) return plan_xmin(position);
    PgConnection& db = handle();
    discover();
    Window w;
    if (mode_ == Mode::Full) {
      w.description = table_.empty() ? "full query" : "full table " + object_;
      if (!table_.empty()) {
        auto est = db.query_value(
            "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
            {schema_name_, table_});
        int64_t n = -1;
        if (est) std::from_chars(est->data(), est->data() + est->size(), n);
        if (n >= 0) w.estimated_rows = n;
      }
      return w;
    }
    const SourceColumn& cur = cursor_column();
    stored_snapshot_.clear();
    window_snapshot_.clear();
    if (late_commit_net(db)) {
      // One snapshot for the plan and the read; its text becomes the next position's.
      begin_snapshot(db);
      window_snapshot_ = db.query_value("SELECT txid_current_snapshot()::text").value_or("");
      if (position.is_object() && position.contains("snapshot") && position["snapshot"].is_string())
        stored_snapshot_ = position["snapshot"].get<std::string>();
    }
    if (position.is_object() && position.contains("cursor")) {
      w.low = position["cursor"];
    } else if (!position.is_null()) {
      throw Error(
          ErrorCode::StateStoreFailed,
          fmt::format("{}: the stored position {} has no `cursor` value", where_, position.dump()),
          "fix it with `dpone state set` or start over with `dpone state reset`");
    }
    auto high = db.query_value(
        fmt::format("SELECT max({})::text FROM {}", quote_ident(cursor_), from_clause()));
    std::string low_text = w.low.is_null() ? "-inf" : display(w.low);
    if (!high) {
      w.empty = true;
      w.estimated_rows = 0;
      w.description = fmt::format("({}, {}] (empty: {} holds no {} values)", low_text, low_text,
                                  object_, cursor_);
      return w;
    }
    w.high = position_value(cur, *high);
    w.description = fmt::format("({}, {}]", low_text, display(w.high));
    if (!lookback_.empty() && !w.low.is_null())
      w.description += fmt::format(" widened by lookback {}", lookback_);
    if (!w.low.is_null() && !stored_snapshot_.empty())
      w.description += " and the rows of transactions that committed after the last read";
    if (!w.low.is_null()) {
      // Compared by the server, in the column's type.
      auto le = db.query_value(
          fmt::format("SELECT {} <= {}", typed_literal(cur, w.high), typed_literal(cur, w.low)));
      if (le && *le == "t" && lookback_.empty() && stored_snapshot_.empty()) {
        w.empty = true;
        w.estimated_rows = 0;
        return w;
      }
    }
    w.estimated_rows = db.query_int64(
        fmt::format("SELECT count(*) FROM {} WHERE {}", from_clause(), cursor_predicate(w)));
    if (*w.estimated_rows == 0) w.empty = true;
    return w;
  }

  Schema discover() override {
    if (schema_) return *schema_;
    PgConnection& db = handle();
    columns_ = table_.empty() ? discover_query(db) : discover_table(db);
    Schema schema;
    for (const auto& c : columns_) {
      schema.columns.push_back(c.column);
      if (!c.pg.known && diagnostics_) {
        diagnostics_->warn(fmt::format(
            "{}: column '{}' of {} has the type '{}', which dpone does not map; its values "
            "are read as {}",
            where_, c.column.name, object_, c.pg.pg_name,
            c.pg.as_json ? "json arrays" : "string (the server's text)"));
      }
    }
    if (!table_.empty()) schema.primary_key = pg::primary_key(db, schema_name_, table_);
    if (!primary_key_.empty()) {
      for (const auto& k : primary_key_) {
        if (schema.find(k) < 0) {
          throw Error(
              ErrorCode::ConfigBadValue,
              fmt::format("{}: primary_key column '{}' is not a column of {}", where_, k, object_),
              fmt::format("columns: {}", fmt::join(schema.names(), ", ")));
        }
      }
      schema.primary_key = primary_key_;
    }
    schema_ = schema;
    return schema;
  }

  // Pass-through (README.md "Pass-through"), once discover() has run:
  // - pg_copy_binary when every column's binary data can be staged on another server
  //   (pg::copy_binary_passes_through): the artifact names each column's exact server
  //   type (wire_types), and a reader must decode with exactly those types;
  // - pg_copy_text when every column's server text is valid COPY input for the staging
  //   type the postgres sink declares for it, with the value the record-batch path would
  //   load (pg::copy_text_passes_through);
  // - record batches always.
  std::vector<ArtifactSpec> produces() const override {
    const ArtifactSpec batches{ArtifactKind::StreamingRows, WireFormat::RecordBatch};
    if (!schema_) return {batches};
    std::vector<ArtifactSpec> out;
    // Internal query (pg_internal_query.hpp): the same values as the pg_copy_text path,
    // so offered under the same rule; taken only for a sink on this very database.
    if (internal_query_ &&
        std::all_of(columns_.begin(), columns_.end(),
                    [](const SourceColumn& c) { return pg::copy_text_passes_through(c.pg); }))
      out.push_back({ArtifactKind::InternalQuery});
    if (std::all_of(columns_.begin(), columns_.end(),
                    [](const SourceColumn& c) { return pg::copy_binary_passes_through(c.pg); }))
      out.push_back({ArtifactKind::StreamingRows, WireFormat::PgCopyBinary});
    if (std::all_of(columns_.begin(), columns_.end(),
                    [](const SourceColumn& c) { return pg::copy_text_passes_through(c.pg); }))
      out.push_back({ArtifactKind::StreamingRows, WireFormat::PgCopyText});
    out.push_back(batches);
    return out;
  }

  Artifact extract(const Window& window, const ArtifactSpec& spec,
                   const ExtractOptions& options) override {
    const bool binary = spec.format == WireFormat::PgCopyBinary;
    const bool bytes = binary || spec.format == WireFormat::PgCopyText;
    Schema schema = discover();
    const auto offered = produces();
    if (std::find(offered.begin(), offered.end(), spec) == offered.end()) {
      std::vector<std::string> names;
      for (const auto& s : offered) names.push_back(s.to_string());
      throw Error(ErrorCode::Internal, fmt::format("{} cannot produce {}; it produces {}", where_,
                                                   spec.to_string(), fmt::join(names, ", ")));
    }
    StreamingRows out;
    out.format = spec.format;
    if (binary) {
      for (const auto& c : columns_) out.wire_types.push_back(binary_wire_type(c.pg));
    }
    const bool internal = spec.kind == ArtifactKind::InternalQuery;
    if (window.empty && !internal) {
      if (xmin_txn_) {
        conn_->exec("COMMIT");
        xmin_txn_ = false;
      }
      if (bytes) {
        out.bytes = std::make_unique<EmptyByteReader>();
      } else {
        out.batches = std::make_unique<EmptyBatchReader>(std::move(schema));
      }
      return out;
    }
    std::vector<std::string> exprs;
    for (const auto& c : columns_) {
      std::string q = quote_ident(c.column.name);
      if (c.pg.as_json) {
        exprs.push_back(fmt::format("to_json({}) AS {}", q, q));
      } else if (binary && binary_wire_type(c.pg) == "text" && c.pg.pg_name != "text") {
        // char(n) as the server prints it, padding included (a cast would strip it).
        exprs.push_back(fmt::format("textin(bpcharout({})) AS {}", q, q));
      } else if (binary) {
        // Binary data is only valid for the exact type: a domain is sent as its base type.
        exprs.push_back(fmt::format("{}::{} AS {}", q, c.pg.pg_name, q));
      } else {
        exprs.push_back(q);
      }
    }
    std::string select = fmt::format("SELECT {} FROM {}", fmt::join(exprs, ", "), from_clause());
    if (mode_ == Mode::Cursor) {
      select += " WHERE " + cursor_predicate(window);
    } else if (mode_ == Mode::Xmin && !window.low.is_null()) {
      select += " WHERE " + xmin_predicate(window);
    }
    if (internal) return internal_query(window.empty ? select + " LIMIT 0" : select);
    const std::string copy_options = binary ? " (FORMAT binary)" : "";
    const bool has_where = select.find(" WHERE ") != std::string::npos &&
                           (mode_ == Mode::Cursor || (mode_ == Mode::Xmin && !window.low.is_null()));
    if (parallel_ > 1 && bytes && options.sink_loads_parts) {
      out.parts = read_parallel(select, has_where, copy_options);
      return out;
    }
    if (parallel_ > 1 && diagnostics_) {
      diagnostics_->warn(fmt::format(
          "{}: parallel: {} is not used: the sink loads one stream ({}), so parts would only be "
          "read one after another",
          where_, parallel_, spec.to_string()));
    }
    std::string copy = fmt::format("COPY ({}) TO STDOUT{}", select, copy_options);
    handle();
    // The reader owns the connection (and, in xmin mode, the open snapshot): the next
    // use of this source connects again.
    std::shared_ptr<PgConnection> conn = std::move(conn_);
    bool commit = xmin_txn_;
    xmin_txn_ = false;
    if (bytes) {
      out.bytes = std::make_unique<PgCopyReader>(std::move(conn), copy, commit);
      return out;
    }
    out.batches = std::make_unique<PgBatchReader>(std::move(conn), copy, columns_,
                                                  std::move(schema), options.batch_rows, commit,
                                                  fmt::format("{} ({})", where_, object_));
    return out;
  }

  nlohmann::json next_position(const Window& window) override {
    switch (mode_) {
      case Mode::Full:
        return nullptr;
      case Mode::Cursor: {
        // An empty window keeps the stored snapshot: transactions running then are still
        // looked for.
        if (window.empty || window.high.is_null()) return position_;
        nlohmann::json out{{"cursor", window.high}};
        if (!window_snapshot_.empty()) out["snapshot"] = window_snapshot_;
        return out;
      }
      case Mode::Xmin:
        return window.high;
    }
    return nullptr;
  }

 private:
  // The extraction query as an InternalQuery artifact. An open xmin snapshot is exported
  // and held by the artifact, so the sink's INSERT ... SELECT reads exactly the rows the
  // window was planned on (as the COPY reader would).
  Artifact internal_query(const std::string& select) {
    if (parallel_ > 1 && diagnostics_) {
      diagnostics_->warn(fmt::format(
          "{}: parallel: {} is not used: the sink runs the read on the server as one "
          "INSERT ... SELECT (internal query); set internal_query: false to read in parallel",
          where_, parallel_));
    }
    InternalQuery q;
    q.connection_identity = connection_identity(connection_);
    q.sql = select;
    for (const auto& c : columns_) q.column_types.push_back(c.pg.as_json ? "json" : c.pg.pg_name);
    if (xmin_txn_) {
      q.snapshot = handle().query_value("SELECT pg_export_snapshot()").value_or("");
      q.snapshot_holder = std::shared_ptr<PgConnection>(std::move(conn_));
      xmin_txn_ = false;
    }
    return q;
  }

  // parallel: N (README.md "Parallel reads"): one snapshot exported from this source's
  // connection (the xmin snapshot when there is one), N worker connections that import it
  // before the exporter commits, each reading one range with its own COPY. The workers
  // commit when their stream ends.
  std::vector<std::unique_ptr<ByteReader>> read_parallel(const std::string& select, bool has_where,
                                                         const std::string& copy_options) {
    PgConnection& db = handle();
    if (!xmin_txn_) {
      db.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      xmin_txn_ = true;
    }
    const std::string snapshot = db.query_value("SELECT pg_export_snapshot()").value_or("");
    std::vector<std::string> ranges = split_ranges(db, select, has_where);
    std::vector<std::unique_ptr<ByteReader>> parts;
    for (const auto& range : ranges) {
      std::shared_ptr<PgConnection> worker =
          PgConnection::connect(connection_, ErrorCode::SourceUnavailable, where_);
      worker->set_failure_code(ErrorCode::SourceReadFailed);
      worker->exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      worker->exec("SET TRANSACTION SNAPSHOT " + worker->literal(snapshot));
      std::string q = range.empty() ? select
                                    : fmt::format("{} {} ({})", select, has_where ? "AND" : "WHERE", range);
      parts.push_back(std::make_unique<PgCopyReader>(
          std::move(worker), fmt::format("COPY ({}) TO STDOUT{}", q, copy_options), true));
    }
    // Every worker holds the snapshot now: the exporting transaction may end.
    db.exec("COMMIT");
    xmin_txn_ = false;
    return parts;
  }

  // The predicates of the parts, read in the exported snapshot: ranges of a single
  // integer key (min..max cut in equal widths; NULL keys go to the first part) or of
  // physical blocks (ctid, tables only; PostgreSQL 14+ scans a TID range directly).
  std::vector<std::string> split_ranges(PgConnection& db, const std::string& select, bool has_where) {
    std::vector<std::string> keys = primary_key_;
    if (keys.empty() && !table_.empty()) keys = pg::primary_key(db, schema_name_, table_);
    std::string key;
    if (keys.size() == 1) {
      for (const auto& c : columns_) {
        if (c.column.name == keys[0] && is_integer_type(c.column.type)) key = keys[0];
      }
    }
    std::string kind = split_by_;
    if (kind == "auto") kind = key.empty() ? "ctid" : "key";
    if (kind == "key" && key.empty()) {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: parallel with split_by: key needs a single-column integer key "
                              "on {}",
                              where_, object_),
                  "set `primary_key` to such a column, or use split_by: ctid (tables only)");
    }
    if (kind == "ctid" && (table_.empty() || pg::relation_kind(db, schema_name_, table_) != 'r')) {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: parallel needs a single-column integer key or a plain table "
                              "(block ranges) to split {}",
                              where_, object_),
                  "set `primary_key` to an integer column of the query, or drop `parallel`");
    }
    split_kind_ = kind;
    std::vector<std::string> out;
    const __int128 n = parallel_;
    if (kind == "key") {
      const std::string k = quote_ident(key);
      // The bounds of the rows this run reads (same window predicate as the parts).
      std::string inner = select.substr(select.find(" FROM "));
      PgResult r = db.exec(fmt::format("SELECT min({0})::text, max({0})::text {1}", k, inner));
      if (r.optional_value(0, 0) == std::nullopt) return {""};  // nothing to split
      int64_t lo = std::stoll(std::string(r.value(0, 0)));
      int64_t hi = std::stoll(std::string(r.value(0, 1)));
      const __int128 width = static_cast<__int128>(hi) - lo + 1;
      std::vector<int64_t> bounds;
      for (__int128 i = 1; i < n; ++i) bounds.push_back(static_cast<int64_t>(lo + width * i / n));
      bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
      out.push_back(bounds.empty() ? "" : fmt::format("{0} < {1} OR {0} IS NULL", k, bounds[0]));
      for (size_t i = 0; i < bounds.size(); ++i) {
        out.push_back(i + 1 < bounds.size()
                          ? fmt::format("{0} >= {1} AND {0} < {2}", k, bounds[i], bounds[i + 1])
                          : fmt::format("{} >= {}", k, bounds[i]));
      }
    } else {
      (void)has_where;
      int64_t pages = db.query_int64(fmt::format(
          "SELECT pg_relation_size({}::regclass) / current_setting('block_size')::int",
          pg::quote_literal(quote_ident(schema_name_) + "." + quote_ident(table_))));
      std::vector<int64_t> bounds;
      for (__int128 i = 1; i < n; ++i) bounds.push_back(static_cast<int64_t>(pages * i / n));
      bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
      if (!bounds.empty() && bounds[0] == 0) bounds.erase(bounds.begin());
      out.push_back(bounds.empty() ? "" : fmt::format("ctid < '({},0)'::tid", bounds[0]));
      for (size_t i = 0; i < bounds.size(); ++i) {
        out.push_back(i + 1 < bounds.size()
                          ? fmt::format("ctid >= '({},0)'::tid AND ctid < '({},0)'::tid", bounds[i],
                                        bounds[i + 1])
                          : fmt::format("ctid >= '({},0)'::tid", bounds[i]));
      }
    }
    return out;
  }

  PgConnection& handle() {
    if (!conn_) {
      conn_ = PgConnection::connect(connection_, ErrorCode::SourceUnavailable, where_);
      conn_->set_failure_code(ErrorCode::SourceReadFailed);
    }
    return *conn_;
  }

  // Opens the REPEATABLE READ READ ONLY transaction whose snapshot the window is planned
  // and read in (held until the reader delivered the last row), and returns the
  // snapshot's xmin; sets snapshot_xmax_.
  int64_t begin_snapshot(PgConnection& db) {
    if (xmin_txn_) {
      db.exec("COMMIT");
      xmin_txn_ = false;
    }
    db.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    xmin_txn_ = true;
    // The first statement fixes the snapshot: everything below reads it.
    PgResult snap = db.exec(
        "SELECT txid_snapshot_xmin(txid_current_snapshot()), "
        "txid_snapshot_xmax(txid_current_snapshot())");
    int64_t xmin = 0;
    auto sx = snap.value(0, 0);
    auto sm = snap.value(0, 1);
    std::from_chars(sx.data(), sx.data() + sx.size(), xmin);
    std::from_chars(sm.data(), sm.data() + sm.size(), snapshot_xmax_);
    return xmin;
  }

  // True when cursor windows look for late commits: a table (row xmin exists) and
  // late_commits: reread. A view or a query cannot; the run says so once.
  bool late_commit_net(PgConnection& db) {
    if (!reread_late_commits_) return false;
    std::optional<char> kind;
    if (!table_.empty()) kind = pg::relation_kind(db, schema_name_, table_);
    if (kind && (*kind == 'r' || *kind == 'p' || *kind == 'm')) return true;
    if (diagnostics_ && !warned_late_commits_) {
      warned_late_commits_ = true;
      diagnostics_->warn(fmt::format(
          "{}: a cursor on {} cannot look for late commits (no row xmin on a view or query): a "
          "transaction that commits after a later one was read is missed",
          where_, object_));
    }
    return false;
  }

  Window plan_xmin(const nlohmann::json& position) {
    PgConnection& db = handle();
    const int64_t xmin = begin_snapshot(db);
    const int64_t xmax = snapshot_xmax_;
    discover();
    auto kind = pg::relation_kind(db, schema_name_, table_);
    if (kind && *kind != 'r' && *kind != 'p' && *kind != 'm') {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: incremental: xmin needs a table; {} is not one (relkind '{}')",
                              where_, object_, *kind),
                  "read the underlying table, or use incremental: cursor");
    }
    Window w;
    w.high = nlohmann::json{{"xmin", xmin}};
    if (position.is_object() && position.contains("xmin") && position["xmin"].is_number_integer()) {
      w.low = position;
      int64_t low = position["xmin"].get<int64_t>();
      if (xmax - low >= (int64_t{1} << 31)) {
        if (diagnostics_) {
          diagnostics_->warn(
              fmt::format("{}: the stored xmin {} is more than 2^31 transactions behind the server "
                          "({}); row ages are ambiguous, so the whole table is read again",
                          where_, low, xmax));
        }
        w.low = nullptr;
      }
    } else if (!position.is_null()) {
      throw Error(ErrorCode::StateStoreFailed,
                  fmt::format("{}: the stored position {} has no integer `xmin` value", where_,
                              position.dump()),
                  "fix it with `dpone state set` or start over with `dpone state reset`");
    }
    if (w.low.is_null()) {
      w.description = fmt::format("full snapshot of {} (xmin below {})", object_, xmin);
      auto est = db.query_value(
          "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = "
          "c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
          {schema_name_, table_});
      int64_t n = -1;
      if (est) std::from_chars(est->data(), est->data() + est->size(), n);
      if (n >= 0) w.estimated_rows = n;
    } else {
      w.description = fmt::format("rows of {} written by transactions [{}, {})", object_,
                                  w.low["xmin"].get<int64_t>(), xmax);
      w.estimated_rows = db.query_int64(
          fmt::format("SELECT count(*) FROM {} WHERE {}", from_clause(), xmin_predicate(w)));
      if (*w.estimated_rows == 0) w.empty = true;
    }
    return w;
  }

  // The 32-bit xmin of a row extended to 64 bits with the epoch of the snapshot, and
  // moved back one epoch when that would date it after the snapshot.
  std::string row_xid64() const {
    const int64_t base = (snapshot_xmax_ >> 32) << 32;
    std::string x = fmt::format("({} + xmin::text::bigint)", base);
    return fmt::format("(CASE WHEN {} > {} THEN {} - 4294967296 ELSE {} END)", x, snapshot_xmax_, x,
                       x);
  }

  std::string xmin_predicate(const Window& w) const {
    return fmt::format("{} >= {}", row_xid64(), w.low["xmin"].get<int64_t>());
  }

  std::string from_clause() const {
    if (!table_.empty()) return quote_ident(schema_name_) + "." + quote_ident(table_);
    return "(" + query_ + "\n) AS " + quote_ident("q");
  }

  const SourceColumn& cursor_column() {
    discover();
    for (const auto& c : columns_)
      if (c.column.name == cursor_) return c;
    std::vector<std::string> names;
    for (const auto& c : columns_) names.push_back(c.column.name);
    throw Error(
        ErrorCode::ConfigBadValue,
        fmt::format("{}: cursor column '{}' is not a column of {}", where_, cursor_, object_),
        fmt::format("columns: {}", fmt::join(names, ", ")));
  }

  // Integers stay JSON integers; everything else is the server's text.
  static nlohmann::json position_value(const SourceColumn& c, const std::string& text) {
    if (is_integer_type(c.column.type)) {
      int64_t n = 0;
      auto r = std::from_chars(text.data(), text.data() + text.size(), n);
      if (r.ec == std::errc() && r.ptr == text.data() + text.size()) return n;
    }
    return text;
  }

  static std::string display(const nlohmann::json& v) {
    return v.is_string() ? v.get<std::string>() : v.dump();
  }

  std::string typed_literal(const SourceColumn& c, const nlohmann::json& v) const {
    std::string text = v.is_string() ? v.get<std::string>() : v.dump();
    return fmt::format("CAST({} AS {})", pg::quote_literal(text), c.pg.pg_name);
  }

  std::string cursor_predicate(const Window& w) {
    const SourceColumn& c = cursor_column();
    std::string col = quote_ident(cursor_);
    std::string high = typed_literal(c, w.high);
    if (w.low.is_null()) return fmt::format("{} <= {}", col, high);
    std::string low = typed_literal(c, w.low);
    if (!lookback_.empty()) low = fmt::format("({} - {})", low, lookback_expression(c));
    if (stored_snapshot_.empty()) return fmt::format("{} > {} AND {} <= {}", col, low, col, high);
    // Late commits: rows at or below low written by a transaction that was running at
    // the stored snapshot (below its xmax and not visible in it).
    const std::string snap =
        fmt::format("CAST({} AS txid_snapshot)", pg::quote_literal(stored_snapshot_));
    return fmt::format(
        "(({0} > {1} AND {0} <= {2}) OR ({0} <= {1} AND {3} < txid_snapshot_xmax({4}) AND NOT "
        "txid_visible_in_snapshot({3}, {4})))",
        col, low, high, row_xid64(), snap);
  }

  std::string lookback_expression(const SourceColumn& c) const {
    if (is_numeric_type(c.column.type)) {
      int64_t n = 0;
      auto r = std::from_chars(lookback_.data(), lookback_.data() + lookback_.size(), n);
      if (r.ec != std::errc() || r.ptr != lookback_.data() + lookback_.size() || n < 0) {
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: `lookback: {}` must be a non-negative integer for the "
                                "numeric cursor '{}'",
                                where_, lookback_, cursor_));
      }
      return std::to_string(n);
    }
    if (is_temporal_type(c.column.type)) {
      return fmt::format("CAST({} AS interval)", pg::quote_literal(lookback_));
    }
    throw Error(ErrorCode::ConfigBadValue,
                fmt::format("{}: `lookback` needs a numeric, date or timestamp cursor; '{}' is {}",
                            where_, cursor_, c.pg.pg_name));
  }

  std::vector<SourceColumn> discover_table(PgConnection& db) {
    auto cols = pg::table_columns(db, schema_name_, table_);
    if (cols.empty()) {
      std::vector<std::string> names;
      PgResult list = db.exec_params(
          "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
          "WHERE n.nspname = $1 AND c.relkind IN ('r','v','m','p','f') ORDER BY 1 LIMIT 20",
          {schema_name_});
      for (int i = 0; i < list.rows(); ++i) names.emplace_back(list.value(i, 0));
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: table {} does not exist on {}", where_, object_, db.target()),
                  names.empty() ? fmt::format("schema '{}' has no tables", schema_name_)
                                : fmt::format("tables there: {}", fmt::join(names, ", ")));
    }
    std::vector<SourceColumn> out;
    for (const auto& c : cols) {
      SourceColumn s;
      s.pg = pg::map_pg_type(c.formatted, c.category);
      s.column = Column{c.name, s.pg.type, !c.notnull};
      out.push_back(std::move(s));
    }
    return out;
  }

  std::vector<SourceColumn> discover_query(PgConnection& db) {
    PgResult r = db.exec(fmt::format("SELECT * FROM {} LIMIT 0", from_clause()));
    std::vector<SourceColumn> out;
    std::set<std::string> seen;
    for (int i = 0; i < r.columns(); ++i) {
      std::string name = PQfname(r.get(), i);
      if (!seen.insert(name).second) {
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: the query returns two columns named '{}'", where_, name),
                    "give each result column its own name with AS");
      }
      PgResult t = db.exec_params(
          "SELECT CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) "
          "ELSE format_type($1::oid, $2::int) END, "
          "CASE WHEN t.typtype = 'd' THEN bt.typcategory ELSE t.typcategory END "
          "FROM pg_type t LEFT JOIN pg_type bt ON bt.oid = t.typbasetype WHERE t.oid = $1::oid",
          {std::to_string(PQftype(r.get(), i)), std::to_string(PQfmod(r.get(), i))});
      SourceColumn s;
      std::string formatted(t.value(0, 0));
      auto cat = t.value(0, 1);
      s.pg = pg::map_pg_type(formatted, cat.empty() ? 'U' : cat[0]);
      s.column = Column{name, s.pg.type, true};
      out.push_back(std::move(s));
    }
    return out;
  }

  Diagnostics* diagnostics_;
  std::string where_;
  ResolvedConnection connection_;
  bool internal_query_ = true;  // option internal_query (default true)
  std::string table_;
  std::string query_;
  std::string schema_name_;
  std::string cursor_;
  std::string lookback_;
  std::vector<std::string> primary_key_;
  Mode mode_ = Mode::Full;
  std::string object_;
  nlohmann::json position_;
  std::shared_ptr<PgConnection> conn_;
  bool xmin_txn_ = false;  // a snapshot transaction is open (xmin mode, cursor on a table)
  int64_t snapshot_xmax_ = 0;
  bool reread_late_commits_ = true;  // option late_commits (reread | ignore)
  bool warned_late_commits_ = false;
  std::string stored_snapshot_;  // the position's snapshot (cursor mode)
  std::string window_snapshot_;  // this window's snapshot, for the next position
  int parallel_ = 1;
  std::string split_by_;
  std::string split_kind_;  // key or ctid, once split
  std::vector<SourceColumn> columns_;
  std::optional<Schema> schema_;
};

}  // namespace

std::unique_ptr<Source> make_postgres_source(const SourceContext& context) {
  return std::make_unique<PgSource>(context);
}

}  // namespace dpone
