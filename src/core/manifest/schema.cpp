#include "core/manifest/schema.hpp"

#include <fmt/format.h>

#include "core/manifest/option_spec.hpp"

namespace dpone {

namespace {

using nlohmann::json;

json opt(const char* type, const char* doc) {
  return json{{"type", type}, {"doc", doc}};
}

json required(json spec) {
  spec["required"] = true;
  return spec;
}

json with_default(json spec, json value) {
  spec["default"] = std::move(value);
  return spec;
}

json enum_of(std::initializer_list<const char*> values, const char* doc) {
  json list = json::array();
  for (const char* v : values) list.push_back(v);
  return json{{"type", "enum"}, {"enum", list}, {"doc", doc}};
}

json build_source() {
  return json{
      {"type", "map"},
      {"extends", "source"},
      {"doc", "Where the stream reads from: a connector and its source options."},
      {"keys",
       {{"connector", required(opt("string", "Source connector name (`dpone connectors list`)."))},
        {"connection",
         opt("string", "Connection id from connections.yaml or DPONE_CONN_<ID>_* variables.")}}}};
}

json build_strategy() {
  json unique_key =
      opt("string_list", "Key column(s); required by `merge`, used by `only_new_rows`.");
  unique_key["secret"] = false;
  return json{
      {"type", "map"},
      {"doc", "Load strategy (SPEC \"Load strategies\")."},
      {"keys",
       {{"mode", required(enum_of({"full_refresh", "append", "merge", "replace",
                                   "partition_replace", "snapshot_diff", "scd2"},
                                  "How staged rows reach the target; the sink connector may "
                                  "support fewer modes."))},
        {"where", opt("string",
                      "replace: SQL predicate of the target slice this load replaces; every "
                      "staged row must satisfy it.")},
        {"partition_by",
         opt("string_list",
             "partition_replace: column(s) whose values name a partition (default: the "
             "target's declarative partition key).")},
        {"max_partitions_per_run",
         opt("integer", "partition_replace: refuse a load touching more partitions (default 100).")},
        {"overwrite", enum_of({"auto", "truncate_insert", "exchange"},
                              "full_refresh: empty and refill the target in one transaction "
                              "(truncate_insert), or build a shadow and swap names (exchange); "
                              "auto (default) lets the sink pick the fastest safe one and `plan` "
                              "says which and why.")},
        {"unique_key", unique_key},
        {"delete_policy",
         enum_of({"soft_delete", "hard_delete", "ignore"},
                 "snapshot_diff: what happens to target rows whose key is missing from the snapshot; "
                 "the same as reconciliation.delete_policy (docs/reconciliation.md), default soft_delete.")},
        {"only_new_rows",
         opt("boolean", "append: skip rows whose unique_key is already in the target.")},
        {"allow_shrink", opt("boolean",
                             "full_refresh: allow replacing a non-empty target with a much smaller "
                             "load (default false).")},
        {"shrink_guard_ratio",
         opt("number",
             "full_refresh: a load smaller than this fraction of a non-empty target "
             "is refused unless allow_shrink (default 0.5).")}}}};
}

json build_sink() {
  return json{
      {"type", "map"},
      {"extends", "sink"},
      {"doc", "Where the stream writes to: a connector, its sink options and the strategy."},
      {"keys",
       {{"connector", required(opt("string", "Sink connector name (`dpone connectors list`)."))},
        {"connection",
         opt("string", "Connection id from connections.yaml or DPONE_CONN_<ID>_* variables.")},
        {"strategy", required(build_strategy())}}}};
}

json build_state() {
  return with_default(
      json{{"type", "map"},
           {"doc", "Where the stream's position (window, revision) is kept."},
           {"keys",
            {{"type", with_default(enum_of({"sqlite", "postgres"},
                                           "State store kind: sqlite (a file beside the "
                                           "manifest) or postgres (tables in a PostgreSQL "
                                           "database; when it is the sink's own database, "
                                           "state commits in the promotion transaction)."),
                                   "sqlite")},
             {"path", with_default(opt("string",
                                       "sqlite: state database file, relative to the "
                                       "manifest's directory."),
                                   ".dpone/state.db")},
             {"connection", opt("string",
                                "postgres: the connection (connections.yaml id) of the "
                                "database that keeps the state.")},
             {"schema", opt("string",
                            "postgres: schema of the state tables `state` and "
                            "`state_history` (created if missing), default dpone.")}}}},
      json{{"type", "sqlite"}, {"path", ".dpone/state.db"}});
}

json build_evolution() {
  return with_default(
      json{{"type", "map"},
           {"doc", "Schema evolution before staging (SPEC \"Schema evolution\")."},
           {"keys",
            {{"policy", with_default(enum_of({"strict", "additive", "widening"},
                                             "strict: any drift fails; additive: only new "
                                             "nullable columns; widening: also safe widenings."),
                                     "widening")},
             {"on_type_change",
              with_default(enum_of({"fail", "new_column"},
                                   "What an incompatible type change does. fail: the run fails; "
                                   "new_column: the target keeps the column and the values go to "
                                   "a new column __dpone__nc__<col>."),
                           "fail")},
             {"apply", with_default(enum_of({"auto", "plan_only"},
                                            "auto: apply safe DDL; plan_only: report it and "
                                            "fail instead of changing the target."),
                                    "auto")}}}},
      json{{"policy", "widening"}, {"on_type_change", "fail"}, {"apply", "auto"}});
}

json build_quality() {
  // Which keys each type takes is checked by check_gate_spec (core/connector/sql_gates);
  // docs/quality-gates.md has an example per type.
  json gate = {
      {"type", "map"},
      {"doc", "A gate run on staging before promotion (docs/quality-gates.md)."},
      {"keys",
       {{"name", opt("string", "Gate name in reports (default `<type>_<columns>`).")},
        {"type", required(enum_of({"row_count", "min_rows", "not_null", "unique", "accepted_values", "range",
                                   "freshness", "custom_sql", "typed_hash"},
                                  "What the gate checks."))},
        {"columns", opt("string_list",
                        "Column(s) the gate checks: not_null, unique (one or more); accepted_values, range, "
                        "freshness (exactly one); typed_hash (optional, default every non-json column).")},
        {"severity", with_default(enum_of({"error", "warn"},
                                          "error: fail the run with the target untouched; warn: record and "
                                          "continue."),
                                  "error")},
        {"tolerance", opt("any",
                          "row_count: allowed difference between source rows read and rows staged, in rows "
                          "(3) or percent of the source rows (\"0.5%\"); default 0.")},
        {"min", opt("any", "min_rows: the fewest rows the load may stage. range: inclusive lower bound.")},
        {"max", opt("any", "range: inclusive upper bound (a number, date or timestamp).")},
        {"values", json{{"type", "list"},
                        {"items", json{{"type", "any"}}},
                        {"doc", "accepted_values: the allowed values (NULL is left to not_null)."}}},
        {"max_age", opt("string",
                        "freshness: the newest value must be at most this old at run time: `<n>s|m|h|d|w` "
                        "(\"24h\").")},
        {"sql", opt("string",
                    "custom_sql: one SELECT returning the failing rows; `{staging}` names the staged table.")}}}};
  return with_default(
      json{{"type", "list"}, {"items", gate}, {"doc", "Quality gates (SPEC \"Quality gates\")."}},
      json::array());
}

json build_reconciliation() {
  return json{
      {"type", "map"},
      {"doc",
       "Key-snapshot reconciliation and deletes (docs/reconciliation.md): target keys missing from "
       "the full source snapshot are deleted under guards. For merge it is opt-in; snapshot_diff and "
       "scd2 always reconcile and read their delete settings here. Needs a full (non-incremental) "
       "read. Under `defaults:` it reaches only snapshot_diff and scd2 streams (a merge stream opts in "
       "with its own key)."},
      {"keys",
       {{"mode", enum_of({"key_snapshot"}, "key_snapshot: the staged rows of the full read are the key set of "
                                           "the same source snapshot.")},
        {"delete_policy", enum_of({"soft_delete", "hard_delete", "ignore"},
                                  "What happens to target rows whose key is missing at the source. "
                                  "soft_delete (default): set __dpone__deleted_at (cleared when the key "
                                  "reappears); hard_delete: delete the row; ignore: keep it. Not for scd2 "
                                  "(missing keys expire).")},
        {"is_deleted_column", opt("boolean", "soft_delete: also keep a boolean __dpone__is_deleted column "
                                             "(default false).")},
        {"max_delete_ratio", opt("number", "Fail the run, applying nothing, when more than this fraction of "
                                           "the target's live rows would be deleted (default 0.5).")},
        {"max_delete_rows", opt("integer", "Fail the run, applying nothing, when more than this many rows "
                                           "would be deleted (default: no limit).")},
        {"allow_empty_snapshot", opt("boolean", "Allow an empty source snapshot to delete every target row "
                                                "(default false: such a run fails).")},
        {"verify", enum_of({"warn", "error", "off"},
                           "Post-load check, inside the promotion transaction after the strategy's writes: "
                           "the target's live rows (scd2: current versions) must equal the staged snapshot "
                           "in count and content checksum. warn (default): record the mismatch in the run "
                           "record and commit; error: fail the run and roll the promotion back; off: skip "
                           "it (two more scans of staging and target).")}}}};
}

json build_lineage() {
  return opt("any",
             "Lineage columns filled with SQL during promotion: true (all), or a list of run_id "
             "(__dpone__run_id), loaded_at (__dpone__loaded_at), row_hash (__dpone__row_hash).");
}

json build_stream() {
  return json{{"type", "map"},
              {"doc", "One stream: a source object loaded into a sink target."},
              {"keys",
               {{"name", required(opt("string",
                                      "Stream name, unique in the manifest (used by --select "
                                      "and as the state key)."))},
                {"description", opt("string", "Free text shown by plan and reports.")},
                {"source", required(build_source())},
                {"sink", required(build_sink())},
                {"state", build_state()},
                {"schema_evolution", build_evolution()},
                {"quality", build_quality()},
                {"reconciliation", build_reconciliation()},
                {"lineage", build_lineage()}}}};
}

json build_defaults() {
  auto partial = [](json spec) {
    // Defaults are partial documents: their required keys are checked per stream
    // after merging, and they are not filled with schema defaults themselves.
    spec.erase("default");
    return spec;
  };
  return json{{"type", "map"},
              {"doc",
               "Values every stream starts from; a stream's own keys override them "
               "(maps deep-merge, scalars and lists replace)."},
              {"keys",
               {{"source", partial(build_source())},
                {"sink", partial(build_sink())},
                {"state", partial(build_state())},
                {"quality", partial(build_quality())},
                {"schema_evolution", partial(build_evolution())},
                {"reconciliation", partial(build_reconciliation())},
                {"lineage", build_lineage()}}}};
}

json build_manifest() {
  json table = {{"type", "any"},
                {"doc",
                 "A table name, or a map with `name` (the table) and stream keys "
                 "(source, sink, description, state, schema_evolution, quality) that "
                 "override the defaults for this table."}};
  json schema_entry = {
      {"type", "map"},
      {"doc",
       "One database schema whose tables become streams named `<schema>.<table>`: "
       "the source gets `schema` and `table`, the sink `table` (unless given)."},
      {"keys",
       {{"tables", required(json{{"type", "list"},
                                 {"items", table},
                                 {"doc", "Tables of the schema, one stream each."}})}}}};
  return json{
      {"type", "map"},
      {"doc", "A dpone batch manifest."},
      {"keys",
       {{"kind", required(enum_of({"dpone.batch.v1"}, "Manifest format version."))},
        {"vars", json{{"type", "map"},
                      {"additional", json{{"type", "any"}}},
                      {"doc",
                       "Template variables for `{{ name }}` (overridden by --var "
                       "name=value)."}}},
        {"connections_file",
         opt("string",
             "Connections file, relative to the manifest (default connections.yaml "
             "beside it; the DPONE_CONNECTIONS variable overrides both).")},
        {"defaults", build_defaults()},
        {"streams", json{{"type", "list"},
                         {"items", build_stream()},
                         {"doc", "The streams (at least one of streams / schemas)."}}},
        {"schemas", json{{"type", "map"},
                         {"additional", schema_entry},
                         {"doc", "Schema name to its tables; each table expands to a stream."}}}}}};
}

}  // namespace

const nlohmann::json& manifest_schema() {
  static const nlohmann::json kSchema = build_manifest();
  return kSchema;
}

const nlohmann::json& stream_schema() {
  return manifest_schema()["keys"]["streams"]["items"];
}

std::string manifest_reference_markdown() {
  const auto& schema = manifest_schema();
  std::string out =
      "# Manifest reference\n\n"
      "<!-- Generated from src/core/manifest/schema.cpp (manifest_reference_markdown()); "
      "do not edit by hand. -->\n\n"
      "A manifest is a YAML file describing streams. Every key below is checked: unknown "
      "keys, wrong types and missing required keys are reported with file, line, column and "
      "key path, with a suggestion for a near miss.\n\n"
      "- **Merging**: a stream starts from `defaults`, then its own keys apply; maps merge "
      "key by key, scalars and lists replace. A key set to `null` counts as not set (it "
      "cancels a default).\n"
      "- **Templates**: `{{ name }}` in a string is replaced by `vars.name` (or `--var "
      "name=value`); built-ins: `stream` (the stream name), and `schema`, `table` in streams "
      "expanded from `schemas`. A string that is exactly one `{{ name }}` takes the "
      "variable's type. `{{ state.* }}` is left for connectors to fill at run time. Quote "
      "templates: YAML reads an unquoted `{{ x }}` as a map.\n"
      "- **Connections**: `connection: <id>` names an entry of the connections file "
      "(`connections: {<id>: {type: <connector>, <field>: <value>}}`) or a connection made of "
      "environment variables `DPONE_CONN_<ID>_<FIELD>` (`DPONE_CONN_<ID>_TYPE` sets the "
      "connector). Values may use `${env:NAME}` and `${file:PATH}`. Validation never "
      "resolves secrets.\n\n"
      "## Top level\n\n";
  out += render_spec_table(schema);
  const auto& keys = schema["keys"];
  out += "\n## `defaults`\n\n" + keys["defaults"]["doc"].get<std::string>() + "\n\n";
  out += render_spec_table(keys["defaults"]);
  out +=
      "\nEach takes the same keys as in a stream (below); required keys are checked per "
      "stream after merging.\n";
  out += "\n## `schemas.<schema>`\n\n" + keys["schemas"]["additional"]["doc"].get<std::string>() +
         "\n\n";
  out += render_spec_table(keys["schemas"]["additional"]);
  out += "\n## Stream keys (`streams[]`)\n\n";
  out += render_spec_markdown(stream_schema(), "streams[]", 3);
  return out;
}

}  // namespace dpone
