#include "runtime/engine.hpp"

#include <fstream>
#include <optional>

#include <fmt/format.h>

#include "core/connector/gate_tap.hpp"
#include "core/connector/reconcile_sql.hpp"
#include "core/connector/strategy.hpp"
#include "core/errors.hpp"
#include "core/evolution/schema_diff.hpp"
#include "core/util/failpoint.hpp"
#include "core/util/interrupt.hpp"
#include "core/util/redactor.hpp"
#include "core/util/time.hpp"
#include "runtime/console.hpp"
#include "runtime/lease.hpp"
#include "runtime/negotiation.hpp"
#include "runtime/project.hpp"
#include "runtime/run_record.hpp"
#include "runtime/stream_parts.hpp"

namespace dpone {

namespace {

using json = nlohmann::json;

// Times phases into record["phases"].
class Phases {
 public:
  explicit Phases(json& record) : record_(record) { record_["phases"] = json::array(); }
  void begin(const std::string& name) {
    end();
    name_ = name;
    started_at_ = now_iso8601();
    t0_ = monotonic_seconds();
  }
  void end(int64_t rows = -1, int64_t bytes = -1) {
    if (name_.empty()) return;
    json p{{"name", name_}, {"started_at", started_at_}, {"duration_s", monotonic_seconds() - t0_}};
    if (rows >= 0) p["rows"] = rows;
    if (bytes >= 0) p["bytes"] = bytes;
    record_["phases"].push_back(p);
    name_.clear();
  }
  const std::string& current() const { return name_; }
  double elapsed() const { return monotonic_seconds() - t0_; }

 private:
  json& record_;
  std::string name_, started_at_;
  double t0_ = 0;
};

EvolutionPolicy policy_of(const json& config) {
  auto se = config.value("schema_evolution", json::object());
  auto p = parse_policy(se.value("policy", "widening"));
  return p ? *p : EvolutionPolicy::Widening;
}

OnTypeChange on_type_change_of(const json& config) {
  auto se = config.value("schema_evolution", json::object());
  auto m = parse_on_type_change(se.value("on_type_change", "fail"));
  return m ? *m : OnTypeChange::Fail;
}

bool plan_only(const json& config) {
  return config.value("schema_evolution", json::object()).value("apply", "auto") == "plan_only";
}

// Built-in gates (merge keys must be present and unique in staging) plus the
// stream's declared quality gates. Every gate listed here runs.
std::vector<GateSpec> gates_for(const StrategySpec& strategy, const json& config) {
  std::vector<GateSpec> gates;
  bool keyed = strategy.mode == StrategyMode::Merge || strategy.reconciles() ||
               (strategy.mode == StrategyMode::Append && strategy.only_new_rows);
  if (keyed) {
    gates.push_back(
        {"unique_key_not_null", "not_null", strategy.unique_key, "error", json::object()});
    gates.push_back({"unique_key_unique", "unique", strategy.unique_key, "error", json::object()});
  }
  for (const auto& g : config.value("quality", json::array())) {
    GateSpec s;
    s.type = g.value("type", "");
    s.name = g.value("name", s.type);
    const auto& cols = g.value("columns", json::array());
    if (cols.is_string())
      s.columns.push_back(cols.get<std::string>());
    else
      for (const auto& c : cols) s.columns.push_back(c.get<std::string>());
    s.severity = g.value("severity", "error");
    s.params = g;
    gates.push_back(std::move(s));
  }
  return gates;
}

// Internal query: the identities of both sides, and whether a declared gate needs to
// see the rows (row_count and typed_hash count and hash them as they pass through
// dpone; with INSERT ... SELECT on the server nothing passes, so those gates would fail
// closed: the COPY path is taken instead).
ArtifactContext artifact_context(const StreamParts& parts, const std::vector<GateSpec>& gates) {
  ArtifactContext ctx;
  if (parts.source_conn) ctx.source_identity = connection_identity(*parts.source_conn);
  if (parts.sink_conn) ctx.sink_identity = connection_identity(*parts.sink_conn);
  if (parts.source_conn && parts.sink_conn && parts.source_conn->type != parts.sink_conn->type)
    ctx.sink_identity.clear();
  for (const auto& g : gates)
    if (g.type == "row_count" || g.type == "typed_hash") {
      ctx.refuse_internal =
          "gate " + g.name + " (" + g.type + ") must see the rows pass through dpone";
      break;
    }
  return ctx;
}

json schema_json(const Schema& s) {
  json cols = json::array();
  for (const auto& c : s.columns)
    cols.push_back({{"name", c.name}, {"type", c.type.to_string()}, {"nullable", c.nullable}});
  return {{"columns", cols}, {"primary_key", s.primary_key}};
}

json state_json(const std::optional<StreamState>& s) {
  if (!s) return json{{"revision", 0}, {"position", nullptr}};
  return s->to_json();
}

// The sink's DDL for one change (used to tell the operator how to resolve unsafe ones).
DdlRenderer ddl_renderer(Sink& sink, const Schema& schema) {
  return [&sink, &schema](const SchemaChange& c) { return sink.render_ddl(schema, {&c}); };
}

}  // namespace

Engine::Engine(const Manifest& manifest, const ConnectionResolver& connections,
               ModuleLoader& loader, EngineOptions options)
    : manifest_(manifest),
      connections_(connections),
      loader_(loader),
      options_(options),
      run_id_(new_run_id()) {}

json Engine::run(const std::vector<const StreamSpec*>& streams) {
  json record{{"run_id", run_id_},
              {"kind", "run"},
              {"dpone_version", DPONE_VERSION},
              {"manifest", manifest_.file.string()},
              {"started_at", now_iso8601()},
              {"streams", json::array()}};
  double t0 = monotonic_seconds();
  bool all_ok = true;
  bool interrupted = false;
  for (const StreamSpec* s : streams) {
    // A signal that arrived after a stream's promotion let that stream finish; the
    // streams after it are not started.
    if (interrupt_signal() != 0) interrupted = true;
    if (interrupted) {
      // Streams after an interrupt are not started; the record says so.
      record["streams"].push_back({{"stream", s->name},
                                   {"status", "not_started"},
                                   {"note", "the run was interrupted before this stream started"}});
      continue;
    }
    json sr = run_stream(*s);
    all_ok = all_ok && (sr["status"] == "succeeded" || sr["status"] == "no_new_data");
    if (sr.contains("error") && sr["error"].value("code", "") == "INTERRUPTED") interrupted = true;
    record["streams"].push_back(std::move(sr));
  }
  record["finished_at"] = now_iso8601();
  record["duration_s"] = monotonic_seconds() - t0;
  record["status"] = interrupted ? "interrupted" : all_ok ? "succeeded" : "failed";
  write_run_record(runs_dir(manifest_.base_dir), record);
  return record;
}

namespace {

// Source::committed() after a state commit: best effort, a failure is a warning (the
// state is committed and stays the source of truth).
void notify_committed(Source& source, Diagnostics& diagnostics, const Window& window,
                      const json& position) {
  try {
    source.committed(window, position);
  } catch (const std::exception& e) {
    diagnostics.warn(std::string("after the state commit: ") + e.what() +
                     " (state is committed; the run succeeded)");
  }
}

}  // namespace

json Engine::run_stream(const StreamSpec& stream) {
  json rec{{"stream", stream.name},
           {"status", "running"},
           {"started_at", now_iso8601()},
           {"batch_rows", options_.batch_rows}};
  const double cpu_t0 = process_cpu_seconds();
  Phases phases(rec);
  Console& console = Console::get();
  double stream_t0 = monotonic_seconds();
  StreamParts parts;
  std::optional<StagedLoad> staged;
  std::unique_ptr<StateStore> store;
  std::optional<StreamLeaseHold> lease;  // borrows store; released when run_stream returns
  bool first_batch = true;
  const json& cfg = stream.config;
  rec["source"] = {{"connector", cfg["source"].value("connector", "")},
                   {"connection", cfg["source"].value("connection", "")},
                   {"incremental", cfg["source"].value("incremental", "full")}};
  rec["sink"] = {{"connector", cfg["sink"].value("connector", "")},
                 {"connection", cfg["sink"].value("connection", "")}};
  rec["rows"] = {{"extracted", 0}, {"staged", 0}, {"inserted", 0}, {"updated", 0}, {"deleted", 0}};
  try {
    phases.begin("resolve");
    StrategySpec strategy = StrategySpec::for_stream(cfg);
    rec["strategy"] = strategy.raw;
    make_stream_parts(parts, stream, manifest_, connections_, loader_, run_id_,
                      [&](int64_t rows, int64_t bytes) {
                        rec["rows"]["staged"] = rows;
                        rec["bytes"] = bytes;
                        console.progress(stream.name, "stage", rows, phases.elapsed());
                        if (first_batch) {
                          first_batch = false;
                          failpoint("during_stage");
                        }
                        check_interrupt("during stage");
                      });
    store =
        open_state(state_location(cfg, manifest_.base_dir), StateServices{&connections_, &loader_});
    rec["state_store"] = store->describe();

    // One run at a time per stream: the lease is held before anything reads the window
    // or touches staging, and released when this scope ends (also on failure).
    phases.begin("lease");
    check_interrupt("before the stream started");
    lease.emplace(*store, stream.name, run_id_, LeaseOptions::from_env(options_.lease_wait_s));
    rec["lease"] = {{"ttl_s", LeaseOptions::from_env(0).ttl_s}, {"waited_s", lease->waited_s()}};
    if (lease->bypassed()) rec["lease"]["bypassed"] = true;
    if (lease->taken_over()) {
      rec["lease"]["taken_over"] = lease->taken_over()->to_json();
      console.warn(fmt::format("{}: took over the lease of {} (expired, or its process is gone)",
                               stream.name, lease->taken_over()->describe()));
    }

    phases.begin("window");
    auto state = store->get(stream.name);
    rec["state_before"] = state_json(state);
    // Runs that hold a lease in the state store (this run among them): not dead.
    auto live_runs = [&] {
      std::vector<std::string> live{run_id_};
      for (const auto& l : store->live_leases()) live.push_back(l.run_id);
      return live;
    };
    {
      // A promotion a dead run of this stream left undecided gets its receipt (or is
      // undone) before receipts are read.
      auto decided = parts.sink->recover_promotions(live_runs());
      for (const auto& d : decided) console.warn(stream.name + ": " + d);
      if (!decided.empty()) rec["promotion_recovery"] = decided;
    }
    // Recovery: a receipt newer than the state, written by a run that promoted and
    // then died before its state commit, advances the state instead of reloading.
    if (auto receipt = parts.sink->latest_receipt()) {
      int64_t rev = state ? state->revision : 0;
      std::string last = state ? state->run_id : "";
      if (receipt->run_id != last && receipt->base_revision == rev) {
        state = store->commit(stream.name, rev, receipt->new_position, receipt->run_id, "recover");
        rec["recovery"] = {
            {"from_run", receipt->run_id},
            {"rows", receipt->rows},
            {"position", receipt->new_position},
            {"note",
             "run " + receipt->run_id +
                 " promoted its window but did not commit state; state advanced to its receipt"}};
        console.warn(fmt::format("{}: recovered state from the load receipt of run {}", stream.name,
                                 receipt->run_id));
        Window recovered;
        if (receipt->window.is_object()) {
          recovered.low = receipt->window.value("low", json());
          recovered.high = receipt->window.value("high", json());
          recovered.description = receipt->window.value("description", "");
        }
        notify_committed(*parts.source, parts.diagnostics, recovered, receipt->new_position);
      }
    }
    json position = state ? state->position : json();
    int64_t base_revision = state ? state->revision : 0;
    // The newest receipt as this run saw it: promotion re-reads it under lock and rolls
    // back if another run promoted since (PromoteRequest::expected_latest_receipt).
    const std::string seen_receipt = newest_receipt_run_id(*parts.sink);
    Window window = parts.source->plan_window(position);
    rec["window"] = window.to_json();

    phases.begin("discover");
    check_interrupt("before discover");
    Schema schema = parts.source->discover();
    TargetInfo target = parts.sink->inspect();
    rec["source_schema"] = schema_json(schema);
    rec["target"] = {{"name", target.name}, {"exists", target.exists}, {"server", target.server}};
    if (target.rows) rec["target"]["rows_before"] = *target.rows;
    failpoint("after_discover");

    phases.begin("evolve");
    check_interrupt("before schema evolution");
    EvolutionPolicy policy = policy_of(cfg);
    SchemaDiff diff;
    std::vector<std::string> ddl;
    if (!target.schemaless) {
      diff = compare_schemas(schema,
                             target.exists ? std::optional<Schema>(target.schema) : std::nullopt,
                             policy, on_type_change_of(cfg));
      rec["schema"] = {{"policy", to_string(policy)},
                       {"on_type_change", to_string(on_type_change_of(cfg))},
                       {"apply", plan_only(cfg) ? "plan_only" : "auto"},
                       {"changes", diff.to_json()},
                       {"routed", diff.routes_json()},
                       {"ddl", json::array()},
                       {"decision", "fail"}};
      if (diff.has_unsafe()) {
        DdlRenderer render = ddl_renderer(*parts.sink, schema);
        rec["schema"]["resolutions"] =
            unsafe_resolutions_json(diff, policy, on_type_change_of(cfg), target.name, render);
        throw Error(ErrorCode::SchemaUnsafeChange,
                    unsafe_changes_message(stream.name, diff, policy, on_type_change_of(cfg),
                                           target.name, render),
                    "run the DDL shown for each change (or make the manifest change shown), then "
                    "re-run; nothing "
                    "was loaded");
      }
      // Routed columns (on_type_change: new_column) are staged and promoted under their
      // __dpone__nc__ name; the target keeps the old column.
      schema = diff.route(schema);
      ddl = parts.sink->render_ddl(schema, diff.to_apply());
      rec["schema"]["ddl"] = ddl;
      rec["schema"]["decision"] = diff.changes.empty() && diff.routes.empty() ? "no change"
                                  : plan_only(cfg) && !ddl.empty() ? "plan_only: not applied"
                                                                   : "apply";
      if (plan_only(cfg) && !ddl.empty())
        throw Error(ErrorCode::SchemaUnsafeChange,
                    "stream " + stream.name +
                        ": schema_evolution.apply is plan_only and the target needs:\n  " +
                        fmt::format("{}", fmt::join(ddl, "\n  ")),
                    "apply the DDL yourself or set schema_evolution.apply: auto");
    } else {
      rec["schema"] = {{"policy", "n/a (schemaless target)"},
                       {"changes", json::array()},
                       {"ddl", json::array()}};
    }

    phases.begin("cleanup");
    check_interrupt("before cleanup");
    {
      // Staging of runs that still hold a lease (another stream into the same target) is
      // not abandoned; this run's own lease is among them.
      rec["cleanup"] = parts.sink->cleanup_abandoned(live_runs());
    }
    failpoint("after_cleanup");

    if (window.empty) {
      phases.end();
      rec["status"] = "no_new_data";
      rec["state_after"] = rec["state_before"];
      if (rec.contains("recovery")) rec["state_after"] = state_json(state);
    } else {
      phases.begin("stage");
      check_interrupt("before stage");
      auto gates = gates_for(strategy, cfg);
      ArtifactDecision decision = negotiate(parts.source->produces(), parts.sink->accepts(),
                                            artifact_context(parts, gates));
      rec["artifact"] = decision.to_json();
      ExtractOptions eo;
      eo.batch_rows = options_.batch_rows;
      eo.sink_loads_parts = parts.sink->loads_parts();
      // Gates that compare source and staging see the rows as the sink pulls them.
      GateTap tap(gates, schema, "stream '" + stream.name + "'");
      Artifact artifact = tap.wrap(parts.source->extract(window, decision.source_spec, eo));
      staged = parts.sink->stage(std::move(artifact), schema);
      rec["rows"]["extracted"] = staged->rows;
      rec["rows"]["staged"] = staged->rows;
      rec["bytes"] = staged->bytes;
      rec["staging"] = staged->staging_name;
      // What the sink says about how it staged (format, parallel parts, direct exchange).
      if (staged->details.is_object()) rec["stage_details"] = staged->details;
      phases.end(staged->rows, staged->bytes);
      console.clear_progress();
      failpoint("after_stage");

      phases.begin("gates");
      check_interrupt("after stage");
      tap.annotate(gates);
      auto results = gates.empty() ? std::vector<GateResult>{} : parts.sink->check(*staged, gates);
      rec["gates"] = json::array();
      for (const auto& r : results) rec["gates"].push_back(r.to_json());
      // Every gate has run; all failing error gates are named, the first one's code wins.
      std::vector<std::string> failed;
      std::optional<ErrorCode> failed_code;
      for (const auto& r : results) {
        if (r.passed) continue;
        const auto& cols = gates[&r - &results[0]].columns;
        std::string what = fmt::format(
            "gate {} ({}{}) failed: {} rows", r.name, r.type,
            cols.empty() ? "" : fmt::format(" on {}", fmt::join(cols, ", ")), r.failing_rows);
        if (!r.detail.empty()) what += " (" + r.detail + ")";
        if (!r.samples.empty()) what += fmt::format("; e.g. {}", fmt::join(r.samples, "; "));
        if (r.severity == "warn") {
          console.warn(stream.name + ": " + what);
          continue;
        }
        ErrorCode code = ErrorCode::GateFailed;
        if (r.name == "unique_key_not_null") code = ErrorCode::KeyNull;
        if (r.name == "unique_key_unique") code = ErrorCode::KeyDuplicate;
        if (!failed_code) failed_code = code;
        failed.push_back(what);
      }
      if (failed_code)
        throw Error(*failed_code,
                    "stream " + stream.name + ": " + fmt::format("{}", fmt::join(failed, "\n  ")),
                    "the target and state are unchanged; fix the source data, the key, or the gate "
                    "in the stream's quality list");
      if (strategy.mode == StrategyMode::FullRefresh && !strategy.allow_shrink && target.rows &&
          *target.rows > 0 &&
          staged->rows < strategy.shrink_guard_ratio * static_cast<double>(*target.rows)) {
        throw Error(
            ErrorCode::ShrinkRefused,
            fmt::format("stream {}: refusing to replace {} ({} rows) with {} rows", stream.name,
                        target.name, *target.rows, staged->rows),
            fmt::format(
                "a full_refresh may not shrink a non-empty target below {:.0f}% of its rows; "
                "set sink.strategy.allow_shrink: true if this is intended",
                strategy.shrink_guard_ratio * 100));
      }
      failpoint("after_gates");

      check_interrupt("after the gates");
      phases.begin("promote");
      // From here the promotion runs to its end: an interrupt is looked at again only
      // after the state commit.
      lease->check_held();
      failpoint("before_promote");
      PromoteRequest req;
      req.expected_latest_receipt = seen_receipt;
      req.strategy = strategy;
      req.changes = diff.to_apply();
      req.source_schema = schema;
      req.receipt = LoadReceipt{stream.name,
                                run_id_,
                                base_revision,
                                window.to_json(),
                                parts.source->next_position(window),
                                staged->rows,
                                now_iso8601()};
      // A store in the sink's own database is committed by the sink, inside the
      // promotion transaction (exactly-once: data, receipt and state together).
      if (auto target = store->transactional_target())
        req.state_commit = StateCommitRequest{
            *target, stream.name, base_revision, req.receipt.new_position, run_id_, "commit"};
      PromoteResult pr = parts.sink->promote(*staged, req);
      rec["promotion"] = {{"atomic", pr.atomic},
                          {"sql", pr.sql},
                          {"state_committed", pr.state_committed.has_value()}};
      rec["rows"]["inserted"] = pr.inserted;
      rec["rows"]["updated"] = pr.updated;
      rec["rows"]["deleted"] = pr.deleted;
      if (!pr.reconciliation.is_null()) {
        rec["reconciliation"] = pr.reconciliation;
        // verify: warn (the default) committed a target that differs from the snapshot.
        const json& post = pr.reconciliation.value("post_load", json());
        if (post.is_object() && !post.value("passed", true))
          parts.diagnostics.warn(post.value("message", "post-load verification failed") +
                                 " (reconciliation.verify: warn: the load was committed)");
      }
      phases.end(staged->rows);
      failpoint("after_promote");

      phases.begin("state");
      failpoint("before_state_commit");
      if (pr.state_committed) {
        rec["state_after"] = pr.state_committed->to_json();
        rec["state_commit"] =
            "with the data, in the promotion transaction (" + store->describe() + ")";
      } else {
        auto after =
            store->commit(stream.name, base_revision, req.receipt.new_position, run_id_, "commit");
        rec["state_after"] = after.to_json();
        rec["state_commit"] = "after promotion (" + store->describe() + ")";
      }
      notify_committed(*parts.source, parts.diagnostics, window, req.receipt.new_position);
      failpoint("after_state_commit");
      rec["status"] = "succeeded";
    }
    phases.begin("finish");
    if (staged) parts.sink->abort(*staged);  // drops the staging object
    staged.reset();
    failpoint("before_run_record");
    phases.end();
  } catch (const Error& e) {
    console.clear_progress();
    std::string phase = phases.current();
    phases.end();
    const bool interrupted = e.code() == ErrorCode::Interrupted;
    rec["status"] = interrupted ? "interrupted" : "failed";
    // A breached delete guard or post-load check: its counters, with "applied": false.
    if (const auto* re = dynamic_cast<const ReconcileError*>(&e))
      rec["reconciliation"] = re->reconciliation();
    rec["error"] = {{"code", e.code_name()},
                    {"message", e.what()},
                    {"hint", e.hint()},
                    {"retryable", e.retryable()},
                    {"phase", phase},
                    {"exit_code", interrupted ? interrupt_exit_code() : exit_code_for(e.code())}};
  } catch (const std::exception& e) {
    console.clear_progress();
    std::string phase = phases.current();
    phases.end();
    rec["status"] = "failed";
    rec["error"] = {{"code", "INTERNAL"},
                    {"message", e.what()},
                    {"hint", "this is a bug in dpone; please report it"},
                    {"retryable", false},
                    {"phase", phase},
                    {"exit_code", 1}};
  }
  if (staged && parts.sink) {
    // A failed run drops its staging before it ends (best effort: a sink that cannot
    // says so in a warning, and the next run's cleanup removes what is left).
    const size_t warned = parts.diagnostics.warnings().size();
    parts.sink->abort(*staged);
    const bool dropped = parts.diagnostics.warnings().size() == warned;
    rec["staging_after_failure"] = {{"name", staged->staging_name}, {"dropped", dropped}};
    if (dropped && !staged->staging_name.empty())
      console.info(stream.name + ": staging " + staged->staging_name + " dropped");
  }
  rec["warnings"] = parts.diagnostics.warnings();
  for (const auto& w : parts.diagnostics.warnings()) console.warn(stream.name + ": " + w);
  rec["finished_at"] = now_iso8601();
  rec["duration_s"] = monotonic_seconds() - stream_t0;
  // Streams run one after another, so the process's CPU time over the stream is its own.
  rec["cpu_s"] = process_cpu_seconds() - cpu_t0;
  return rec;
}

json Engine::plan(const std::vector<const StreamSpec*>& streams) {
  json out{{"kind", "plan"}, {"manifest", manifest_.file.string()}, {"streams", json::array()}};
  for (const StreamSpec* s : streams) out["streams"].push_back(plan_stream(*s));
  return out;
}

json Engine::plan_stream(const StreamSpec& stream) {
  json p{{"stream", stream.name}, {"warnings", json::array()}};
  const json& cfg = stream.config;
  StreamParts parts;
  try {
    StrategySpec strategy = StrategySpec::for_stream(cfg);
    p["strategy"] = strategy.raw;
    p["source"] = {{"connector", cfg["source"].value("connector", "")},
                   {"connection", cfg["source"].value("connection", "")}};
    p["sink"] = {{"connector", cfg["sink"].value("connector", "")},
                 {"connection", cfg["sink"].value("connection", "")}};
    make_stream_parts(parts, stream, manifest_, connections_, loader_, run_id_, nullptr);
    auto where = state_location(cfg, manifest_.base_dir);
    auto store = open_state_if_exists(where, StateServices{&connections_, &loader_});
    std::optional<StreamState> state = store ? store->get(stream.name) : std::nullopt;
    p["state_store"] =
        (store ? store->describe() : where.describe()) + (store ? "" : " (not created yet)");
    p["state"] = state_json(state);
    json position = state ? state->position : json();
    if (auto receipt = parts.sink->latest_receipt()) {
      int64_t rev = state ? state->revision : 0;
      if (receipt->run_id != (state ? state->run_id : "") && receipt->base_revision == rev) {
        position = receipt->new_position;
        p["warnings"].push_back("run " + receipt->run_id +
                                " promoted but did not commit state; the run will recover its "
                                "position from the receipt");
      }
    }
    Window window = parts.source->plan_window(position);
    p["window"] = window.to_json();
    Schema schema = parts.source->discover();
    p["source_schema"] = schema_json(schema);
    TargetInfo target = parts.sink->inspect();
    p["target"] = {{"name", target.name},
                   {"exists", target.exists},
                   {"server", target.server},
                   {"capabilities", target.capabilities}};
    if (target.rows) p["target"]["rows"] = *target.rows;
    EvolutionPolicy policy = policy_of(cfg);
    if (!target.schemaless) {
      SchemaDiff diff = compare_schemas(
          schema, target.exists ? std::optional<Schema>(target.schema) : std::nullopt, policy,
          on_type_change_of(cfg));
      p["schema"] = {{"policy", to_string(policy)},
                     {"on_type_change", to_string(on_type_change_of(cfg))},
                     {"apply", plan_only(cfg) ? "plan_only" : "auto"},
                     {"changes", diff.to_json()},
                     {"routed", diff.routes_json()},
                     {"decision", diff.has_unsafe()                               ? "fail"
                                  : (diff.changes.empty() && diff.routes.empty()) ? "no change"
                                                                                  : "apply"}};
      if (diff.has_unsafe()) {
        p["schema"]["ddl"] = json::array();
        DdlRenderer render = ddl_renderer(*parts.sink, schema);
        p["schema"]["resolutions"] =
            unsafe_resolutions_json(diff, policy, on_type_change_of(cfg), target.name, render);
        p["warnings"].push_back(unsafe_changes_message(
            stream.name, diff, policy, on_type_change_of(cfg), target.name, render));
      } else {
        schema = diff.route(schema);
        p["schema"]["ddl"] = parts.sink->render_ddl(schema, diff.to_apply());
        if (plan_only(cfg) && !p["schema"]["ddl"].empty()) {
          p["schema"]["decision"] = "plan_only: not applied";
          p["warnings"].push_back(
              "stream " + stream.name +
              ": schema_evolution.apply is plan_only: the run will fail and not apply the DDL");
        }
      }
    } else {
      p["schema"] = {{"policy", "n/a (schemaless target)"},
                     {"changes", json::array()},
                     {"ddl", json::array()},
                     {"decision", "no change"}};
    }
    p["artifact"] = negotiate(parts.source->produces(), parts.sink->accepts(),
                              artifact_context(parts, gates_for(strategy, cfg)))
                        .to_json();
    p["steps"] = parts.sink->describe_promotion(strategy, schema);
    json gates = json::array();
    for (const auto& g : gates_for(strategy, cfg))
      gates.push_back(
          {{"name", g.name}, {"type", g.type}, {"columns", g.columns}, {"severity", g.severity}});
    p["gates"] = gates;
    if (window.empty) p["warnings"].push_back("no new data: the run will load 0 rows");
    p["status"] = "ok";
  } catch (const Error& e) {
    p["status"] = "error";
    p["error"] = {{"code", e.code_name()}, {"message", e.what()}, {"hint", e.hint()}};
  }
  for (const auto& w : parts.diagnostics.warnings()) p["warnings"].push_back(w);
  return p;
}

}  // namespace dpone
