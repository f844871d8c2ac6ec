#include "connectors/postgres/pg_state_store.hpp"

#include <fmt/format.h>

#include <mutex>

#include "connectors/postgres/pg_connector.hpp"
#include "core/errors.hpp"
#include "core/util/time.hpp"

namespace dpone {

namespace pg {

namespace {

bool known_action(const std::string& action) {
  return action == "commit" || action == "recover" || action == "set" || action == "reset";
}

std::string state_table(const std::string& schema) {
  return quote_ident(schema) + ".\"state\"";
}
std::string history_table(const std::string& schema) {
  return quote_ident(schema) + ".\"state_history\"";
}
std::string lease_table(const std::string& schema) {
  return quote_ident(schema) + ".\"lease\"";
}

}  // namespace

bool state_tables_exist(PgConnection& db, const std::string& schema) {
  auto v = db.query_value("SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
                          {state_table(schema), history_table(schema)});
  return v && *v == "t";
}

void ensure_state_tables(PgConnection& db, const std::string& schema) {
  auto all = db.query_value(
      "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL",
      {state_table(schema), history_table(schema), lease_table(schema)});
  if (all && *all == "t") return;
  PgTransaction txn(db);
  // Two first runs creating the tables at once would collide in the catalogs.
  db.exec_params("SELECT pg_advisory_xact_lock(hashtext($1))", {"dpone.state:" + schema});
  db.exec(fmt::format("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)));
  db.exec(fmt::format(
      "CREATE TABLE IF NOT EXISTS {} (\"stream\" text PRIMARY KEY, \"revision\" bigint NOT "
      "NULL, \"position\" jsonb NOT NULL, \"run_id\" text, \"updated_at\" text)",
      state_table(schema)));
  db.exec(fmt::format(
      "CREATE TABLE IF NOT EXISTS {} (\"stream\" text NOT NULL, \"revision\" bigint NOT NULL, "
      "\"position\" jsonb NOT NULL, \"run_id\" text, \"action\" text NOT NULL, "
      "\"committed_at\" text NOT NULL, PRIMARY KEY (\"stream\", \"revision\"))",
      history_table(schema)));
  // Leases expire by the server's clock (expires_at), so hosts with skewed clocks agree.
  db.exec(fmt::format(
      "CREATE TABLE IF NOT EXISTS {} (\"stream\" text PRIMARY KEY, \"run_id\" text NOT NULL, "
      "\"host\" text NOT NULL, \"pid\" bigint NOT NULL, \"acquired_at\" text NOT NULL, "
      "\"renewed_at\" text NOT NULL, \"ttl_s\" bigint NOT NULL, \"expires_at\" timestamptz NOT NULL)",
      lease_table(schema)));
  txn.commit();
}

StreamState commit_state_in_transaction(PgConnection& db, const std::string& schema,
                                        const StateCommitRequest& request,
                                        std::vector<std::string>* log) {
  if (!known_action(request.action)) {
    throw Error(ErrorCode::Internal,
                fmt::format("state commit of stream '{}' with unknown action '{}' (expected "
                            "commit, recover, set or reset)",
                            request.stream, request.action));
  }
  StreamState out;
  out.stream = request.stream;
  out.revision = request.expected_revision + 1;
  out.position = request.position;
  out.run_id = request.run_id;
  out.updated_at = now_iso8601();
  const std::string position = request.position.dump();
  const std::string revision = std::to_string(out.revision);
  std::string cas;
  std::vector<Param> params;
  if (request.expected_revision == 0) {
    cas = fmt::format(
        "INSERT INTO {} (\"stream\", \"revision\", \"position\", \"run_id\", \"updated_at\") "
        "VALUES ($1, 1, $2::jsonb, $3, $4) ON CONFLICT (\"stream\") DO NOTHING",
        state_table(schema));
    params = {request.stream, position, request.run_id, out.updated_at};
  } else {
    cas = fmt::format(
        "UPDATE {} SET \"revision\" = $2::bigint + 1, \"position\" = $3::jsonb, \"run_id\" = "
        "$4, \"updated_at\" = $5 WHERE \"stream\" = $1 AND \"revision\" = $2::bigint",
        state_table(schema));
    params = {request.stream, std::to_string(request.expected_revision), position, request.run_id,
              out.updated_at};
  }
  if (db.exec_params(cas, params).affected() != 1) {
    const int64_t current = db.query_int64(
        fmt::format("SELECT coalesce((SELECT \"revision\" FROM {} WHERE \"stream\" = $1), 0)",
                    state_table(schema)),
        {request.stream});
    throw Error(ErrorCode::StateConflict,
                fmt::format("state of stream {} is at revision {}, expected {}: another run "
                            "committed first",
                            request.stream, current, request.expected_revision),
                "re-run the stream: it will start from the position the other run "
                "committed; make sure one stream is not scheduled twice at once");
  }
  const std::string hist = fmt::format(
      "INSERT INTO {} (\"stream\", \"revision\", \"position\", \"run_id\", \"action\", "
      "\"committed_at\") VALUES ($1, $2::bigint, $3::jsonb, $4, $5, $6)",
      history_table(schema));
  db.exec_params(
      hist, {request.stream, revision, position, request.run_id, request.action, out.updated_at});
  if (log) {
    log->push_back(cas);
    log->push_back(hist);
  }
  return out;
}

std::optional<StreamState> commit_state_with_data(PgConnection& db,
                                                  const ResolvedConnection& sink_connection,
                                                  const StateCommitRequest& request,
                                                  std::vector<std::string>& log) {
  const std::string identity = connection_identity(sink_connection);
  if (request.target.connector != "postgres" || identity.empty() ||
      request.target.connection_identity != identity) {
    return std::nullopt;
  }
  const std::string schema = request.target.location.value("schema", kDefaultStateSchema);
  try {
    return commit_state_in_transaction(db, schema, request, &log);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::StateConflict) throw;
    throw Error(ErrorCode::StateConflict,
                std::string(e.what()) +
                    "; the promotion was rolled back with it (target, receipt and state unchanged)",
                e.hint());
  }
}

}  // namespace pg

namespace {

class PgStateStore : public StateStore {
 public:
  PgStateStore(const ResolvedConnection& connection, std::string schema)
      : connection_(connection), schema_(std::move(schema)) {
    describe_ = fmt::format("postgres:{}/{}.state", connection_.id, schema_);
    where_ = "state store " + describe_;
  }

  // Connects; with create, makes the tables. Returns false when !create and they are missing.
  bool open(bool create) {
    pg::PgConnection& db = handle();
    if (create) {
      pg::ensure_state_tables(db, schema_);
      return true;
    }
    return pg::state_tables_exist(db, schema_);
  }

  std::string describe() const override { return describe_; }

  std::optional<StreamState> get(const std::string& stream) override {
    std::lock_guard lock(mutex_);
    pg::PgResult r = handle().exec_params(
        fmt::format("SELECT \"stream\", \"revision\", \"position\"::text, \"run_id\", "
                    "\"updated_at\" FROM {} WHERE \"stream\" = $1",
                    state_table()),
        {stream});
    if (r.rows() == 0) return std::nullopt;
    return read_state(r, 0);
  }

  StreamState commit(const std::string& stream, int64_t expected_revision,
                     const nlohmann::json& position, const std::string& run_id,
                     const std::string& action) override {
    std::lock_guard lock(mutex_);
    pg::PgConnection& db = handle();
    try {
      pg::PgTransaction txn(db);
      StreamState out = pg::commit_state_in_transaction(
          db, schema_, StateCommitRequest{{}, stream, expected_revision, position, run_id, action});
      txn.commit();
      return out;
    } catch (const Error& e) {
      rethrow_commit_failure(stream, e);
    }
  }

  std::vector<StreamState> list() override {
    std::lock_guard lock(mutex_);
    pg::PgResult r = handle().exec(
        fmt::format("SELECT \"stream\", \"revision\", \"position\"::text, \"run_id\", "
                    "\"updated_at\" FROM {} ORDER BY \"stream\"",
                    state_table()));
    std::vector<StreamState> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(read_state(r, i));
    return out;
  }

  std::vector<StateHistoryEntry> history(const std::string& stream) override {
    std::lock_guard lock(mutex_);
    pg::PgResult r = handle().exec_params(
        fmt::format("SELECT \"revision\", \"position\"::text, \"run_id\", \"action\", "
                    "\"committed_at\" FROM {} WHERE \"stream\" = $1 ORDER BY \"revision\"",
                    pg::quote_ident(schema_) + ".\"state_history\""),
        {stream});
    std::vector<StateHistoryEntry> out;
    for (int i = 0; i < r.rows(); ++i) {
      StateHistoryEntry e;
      e.revision = std::stoll(std::string(r.value(i, 0)));
      e.position = parse_position(describe_, stream, r.value(i, 1));
      e.run_id = r.optional_value(i, 2).value_or("");
      e.action = r.optional_value(i, 3).value_or("");
      e.committed_at = r.optional_value(i, 4).value_or("");
      out.push_back(std::move(e));
    }
    return out;
  }

  LeaseAttempt acquire_lease(const StreamLease& lease, const std::string& dead_run_id) override {
    std::lock_guard lock(mutex_);
    pg::PgConnection& db = handle();
    try {
      pg::ensure_state_tables(db, schema_);
      pg::PgTransaction txn(db);
      // Serialises two runs taking a stream whose lease row does not exist yet.
      db.exec_params("SELECT pg_advisory_xact_lock(hashtext($1))", {"dpone.lease:" + schema_ + ":" + lease.stream});
      pg::PgResult r = db.exec_params(
          fmt::format("SELECT \"stream\", \"run_id\", \"host\", \"pid\", \"acquired_at\", \"renewed_at\", "
                      "\"ttl_s\", \"expires_at\" > clock_timestamp() FROM {} WHERE \"stream\" = $1 FOR UPDATE",
                      lease_table()),
          {lease.stream});
      LeaseAttempt out;
      if (r.rows() == 1) {
        StreamLease held = read_lease(r, 0);
        if (held.run_id != lease.run_id && r.value(0, 7) == "t" && held.run_id != dead_run_id) {
          out.held_by = held;
          return out;  // rolled back: nothing changed
        }
        if (held.run_id != lease.run_id) out.taken_over = held;
      }
      const std::string at = now_iso8601();
      db.exec_params(
          fmt::format("INSERT INTO {} (\"stream\", \"run_id\", \"host\", \"pid\", \"acquired_at\", "
                      "\"renewed_at\", \"ttl_s\", \"expires_at\") VALUES ($1, $2, $3, $4::bigint, $5, $5, "
                      "$6::bigint, clock_timestamp() + $6::bigint * interval '1 second') ON CONFLICT "
                      "(\"stream\") DO UPDATE SET \"run_id\" = excluded.\"run_id\", \"host\" = "
                      "excluded.\"host\", \"pid\" = excluded.\"pid\", \"acquired_at\" = "
                      "excluded.\"acquired_at\", \"renewed_at\" = excluded.\"renewed_at\", \"ttl_s\" = "
                      "excluded.\"ttl_s\", \"expires_at\" = excluded.\"expires_at\"",
                      lease_table()),
          {lease.stream, lease.run_id, lease.host, std::to_string(lease.pid), at, std::to_string(lease.ttl_s)});
      txn.commit();
      out.acquired = true;
      return out;
    } catch (const Error& e) {
      throw Error(ErrorCode::StateStoreFailed,
                  fmt::format("taking the lease of stream '{}' in {} failed: {}", lease.stream, describe_,
                              e.what()),
                  e.hint());
    }
  }

  bool renew_lease(const std::string& stream, const std::string& run_id) override {
    std::lock_guard lock(mutex_);
    return handle()
               .exec_params(fmt::format("UPDATE {} SET \"renewed_at\" = $3, \"expires_at\" = clock_timestamp() "
                                        "+ \"ttl_s\" * interval '1 second' WHERE \"stream\" = $1 AND "
                                        "\"run_id\" = $2",
                                        lease_table()),
                            {stream, run_id, now_iso8601()})
               .affected() == 1;
  }

  void release_lease(const std::string& stream, const std::string& run_id) noexcept override {
    try {
      std::lock_guard lock(mutex_);
      handle().exec_params(
          fmt::format("DELETE FROM {} WHERE \"stream\" = $1 AND \"run_id\" = $2", lease_table()),
          {stream, run_id});
    } catch (...) {
      // An unreleased lease expires after its ttl.
    }
  }

  std::vector<StreamLease> live_leases() override {
    std::lock_guard lock(mutex_);
    pg::PgConnection& db = handle();
    auto exists = db.query_value("SELECT to_regclass($1) IS NOT NULL", {lease_table()});
    if (!exists || *exists != "t") return {};
    pg::PgResult r = db.exec(fmt::format(
        "SELECT \"stream\", \"run_id\", \"host\", \"pid\", \"acquired_at\", \"renewed_at\", \"ttl_s\" "
        "FROM {} WHERE \"expires_at\" > clock_timestamp() ORDER BY \"stream\"",
        lease_table()));
    std::vector<StreamLease> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(read_lease(r, i));
    return out;
  }

  std::optional<StateCommitTarget> transactional_target() const override {
    const std::string identity = connection_identity(connection_);
    if (identity.empty()) return std::nullopt;
    return StateCommitTarget{"postgres", identity, {{"schema", schema_}}};
  }

 private:
  std::string state_table() const { return pg::quote_ident(schema_) + ".\"state\""; }
  std::string lease_table() const { return pg::quote_ident(schema_) + ".\"lease\""; }
  static StreamLease read_lease(const pg::PgResult& r, int row) {
    StreamLease l;
    l.stream = std::string(r.value(row, 0));
    l.run_id = std::string(r.value(row, 1));
    l.host = std::string(r.value(row, 2));
    l.pid = std::stoll(std::string(r.value(row, 3)));
    l.acquired_at = std::string(r.value(row, 4));
    l.renewed_at = std::string(r.value(row, 5));
    l.ttl_s = std::stoll(std::string(r.value(row, 6)));
    return l;
  }
  pg::PgConnection& handle() {
    if (!conn_) conn_ = pg::PgConnection::connect(connection_, ErrorCode::StateStoreFailed, where_);
    conn_->set_failure_code(ErrorCode::StateStoreFailed);
    return *conn_;
  }
  StreamState read_state(const pg::PgResult& r, int row) const {
    StreamState s;
    s.stream = std::string(r.value(row, 0));
    s.revision = std::stoll(std::string(r.value(row, 1)));
    s.position = parse_position(describe_, s.stream, r.value(row, 2));
    s.run_id = r.optional_value(row, 3).value_or("");
    s.updated_at = r.optional_value(row, 4).value_or("");
    return s;
  }

  std::mutex mutex_;
  ResolvedConnection connection_;
  std::string schema_, describe_, where_;
  std::unique_ptr<pg::PgConnection> conn_;
};

}  // namespace
}  // namespace dpone

namespace dpone {

std::unique_ptr<StateStore> make_postgres_state_store(const StateStoreContext& context) {
  const std::string where = "postgres state store";
  const ResolvedConnection& conn = pg::require_connection(context.connection, where);
  std::string schema = pg::kDefaultStateSchema;
  if (context.options.is_object() && context.options.contains("schema")) {
    if (!context.options["schema"].is_string() ||
        context.options["schema"].get<std::string>().empty())
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: `state.schema` must be a non-empty string", where));
    schema = context.options["schema"].get<std::string>();
  }
  auto store = std::make_unique<PgStateStore>(conn, schema);
  if (!store->open(context.create)) return nullptr;
  return store;
}

}  // namespace dpone
