#include "runtime/certify.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>

#include "core/util/redactor.hpp"
#include "core/util/time.hpp"

namespace dpone {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Proc {
  int exit_code = -1;
  std::string output;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// Runs the dpone binary in `dir` with extra environment; stdout+stderr captured.
Proc run(const CertifyOptions& o, const fs::path& dir, const std::vector<std::string>& args,
         const std::vector<std::pair<std::string, std::string>>& env = {}) {
  fs::path log = dir / "last-output.txt";
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(127);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) _exit(127);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<std::string> all{o.dpone_binary.string()};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  Proc p;
  p.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  p.output = redact(slurp(log));
  return p;
}

json last_record(const CertifyOptions& o, const fs::path& dir, const std::string& manifest) {
  Proc p = run(o, dir, {"run-report", "--last", "-m", manifest, "--format", "json"});
  if (p.exit_code != 0) return json();
  try {
    return json::parse(p.output);
  } catch (const json::exception&) {
    return json();
  }
}

// "id,flag,..." lines of an SQLite table, NULL as \N, ordered by id. Values of the
// column `json_column` are compared as JSON values (re-serialized compactly): a system may
// store JSON in a normalized form (PostgreSQL jsonb: spacing, key order), which is the
// same value.
// `columns`: the select list ("*", or the data columns of a source that adds its own).
// `json_null_is_null`: a JSON null in the json column counts as SQL NULL (the log profile:
// an event carries a row as one JSON object, where both are `null`).
std::string dump(const fs::path& db, const std::string& table,
                 const std::string& json_column = "doc", const std::string& columns = "*",
                 bool json_null_is_null = false) {
  sqlite3* h = nullptr;
  std::string out;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    return "<no database " + db.string() + ">";
  }
  sqlite3_stmt* st = nullptr;
  std::string sql = "SELECT " + columns + " FROM \"" + table + "\" ORDER BY id";
  if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    out = std::string("<") + sqlite3_errmsg(h) + ">";
  } else {
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; ++i) out += (i ? "," : "") + std::string(sqlite3_column_name(st, i));
    out += "\n";
    while (sqlite3_step(st) == SQLITE_ROW) {
      for (int i = 0; i < n; ++i) {
        if (i) out += ",";
        if (sqlite3_column_type(st, i) == SQLITE_NULL) {
          out += "\\N";
          continue;
        }
        std::string v = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
        if (sqlite3_column_name(st, i) == json_column && json::accept(v)) v = json::parse(v).dump();
        if (json_null_is_null && sqlite3_column_name(st, i) == json_column && v == "null")
          v = "\\N";
        out += v;
      }
      out += "\n";
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream x(a), y(b);
  std::string la, lb;
  for (int line = 1;; ++line) {
    bool ga = static_cast<bool>(std::getline(x, la)), gb = static_cast<bool>(std::getline(y, lb));
    if (!ga && !gb) return "";
    if (la != lb || ga != gb) return fmt::format("line {}: expected '{}', got '{}'", line, la, lb);
  }
}

bool has(const json& list, const std::string& value) {
  for (const auto& v : list)
    if (v.is_string() && v.get<std::string>() == value) return true;
  return false;
}

// The canonical data set: every logical type the runtime knows that files can carry,
// with NULLs, the empty string, separators, escapes, unicode and range edges.
const char* kTypesHeader = "id,flag,qty,price,amount,label,day,at,at_tz,doc\n";
const char* kTypesRows =
    "1,true,42,3.5,12.50,plain,2026-11-01,2026-11-01 "
    "10:00:00,2026-11-01T10:00:00Z,\"{\"\"a\"\":1}\"\n"
    "2,false,-7,-0.25,-0.01,\"comma, \"\"quote\"\"\",1999-12-31,1999-12-31 "
    "23:59:59.5,2026-11-01T10:00:00+02:00,[]\n"
    "3,,,,,,,,,\n"
    "4,true,9007199254740993,1e300,9999999999.99,\"tab\there\nnew line \\\\ backslash Zoë "
    "☃\",2000-02-29,2000-02-29 00:00:00,1970-01-01T00:00:00Z,\"{\"\"n\"\":{\"\"x\"\":[1,2]}}\"\n"
    "5,false,0,0,0.00,\"\",1900-01-01,1900-01-01 "
    "00:00:00.000001,2099-12-31T23:59:59.999999Z,null\n";
const char* kTypesColumns =
    "{id: int64, flag: bool, qty: int64, price: float64, amount: \"decimal(12,2)\", label: string, "
    "day: date, "
    "at: timestamp, at_tz: timestamptz, doc: json}";
const char* kTypesList = "id,flag,qty,price,amount,label,day,at,at_tz,doc";

int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

std::vector<ScenarioResult> certify(const ConnectorDescriptor& d, const CertifyOptions& o) {
  std::vector<ScenarioResult> results;
  fs::create_directories(o.work_dir);
  const bool has_sink = d.has_sink(), has_source = d.has_source();
  const auto strategies = d.json.value("sink", json::object()).value("strategies", json::array());
  const auto incremental =
      d.json.value("source", json::object()).value("incremental", json::array());
  // Profiles. `table`: a sink with full_refresh; the scenarios replace, merge and evolve a
  // table. `log`: an append-only sink (a Kafka topic: no full_refresh, no merge, no DDL,
  // no staging that a failure could roll back). It appends, reads everything back with
  // the connector's own source (declared columns: a value carries no SQL type; a fresh
  // stream name per read, so no stored position), checks the source's windows over three
  // runs, and the log's own failure contract: a failure before delivery leaves the log
  // unchanged; a failure after delivery leaves the events, and the re-run delivers them
  // again (at-least-once, as such a connector must document).
  const bool log_profile = !has(strategies, "full_refresh") && has(strategies, "append");
  const json sink_options = d.json.value("sink", json::object()).value("options", json::object());
  const std::string target_key =
      !sink_options.contains("table") && sink_options.contains("topic") ? "topic" : "table";
  const std::string log_columns = log_profile ? fmt::format(", columns: {}", kTypesColumns) : "";
  std::random_device rd;
  const std::string table = fmt::format("dpone_cert_{:06x}", rd() & 0xffffff);
  const std::string header = "kind: dpone.batch.v1\n" +
                             (fs::exists(o.connections_file)
                                  ? "connections_file: \"" + o.connections_file.string() + "\"\n"
                                  : std::string()) +
                             "streams:\n";
  auto to_target = [&](const std::string& name, const std::string& file,
                       const std::string& strategy, const char* incremental = "full") {
    return fmt::format(
        "  - name: {}\n    source: {{connector: files, path: data/{}, incremental: {}, columns: "
        "{}}}\n"
        "    sink: {{connector: {}, connection: {}, {}: {}, strategy: {}}}\n",
        name, file, incremental, kTypesColumns, d.name, o.connection, target_key, table, strategy);
  };
  auto from_target = [&](const std::string& name, const std::string& db, const std::string& extra,
                         const std::string& strategy) {
    return fmt::format(
        "  - name: {}\n    source: {{connector: {}, connection: {}, {}: {}{}}}\n"
        "    sink: {{connector: sqlite, path: {}, table: t, strategy: {}}}\n",
        name, d.name, o.connection, target_key, table, extra, db, strategy);
  };
  fs::create_directories(o.work_dir / "data");
  spit(o.work_dir / "data" / "types.csv", std::string(kTypesHeader) + kTypesRows);
  spit(o.work_dir / "m_load.yaml",
       header +
           to_target("load", "types.csv",
                     log_profile ? "{mode: append}" : "{mode: full_refresh, allow_shrink: true}"));
  spit(
      o.work_dir / "m_ref.yaml",
      header +
          fmt::format(
              "  - name: ref\n    source: {{connector: files, path: data/types.csv, columns: {}}}\n"
              "    sink: {{connector: sqlite, path: ref.db, table: t, strategy: {{mode: "
              "full_refresh}}}}\n",
              kTypesColumns));
  spit(o.work_dir / "m_back.yaml",
       header + from_target("back", "back.db", "", "{mode: full_refresh, allow_shrink: true}"));

  auto scenario = [&](const std::string& name, auto&& body) {
    double t0 = monotonic_seconds();
    ScenarioResult r{name, "FAIL", "", 0};
    try {
      body(r);
    } catch (const std::exception& e) {
      r.status = "FAIL";
      r.detail = std::string("unexpected error: ") + e.what();
    }
    r.seconds = monotonic_seconds() - t0;
    r.detail = redact(r.detail);
    results.push_back(r);
    return r.status == "PASS";
  };
  auto skip = [](ScenarioResult& r, std::string why) {
    r.status = "SKIP";
    r.detail = std::move(why);
  };
  auto run_ok = [&](ScenarioResult& r, const std::string& manifest,
                    const std::vector<std::pair<std::string, std::string>>& env = {}) {
    Proc p = run(o, o.work_dir, {"run", manifest}, env);
    if (p.exit_code != 0) {
      r.detail = fmt::format("`dpone run {}` exited {}: {}", manifest, p.exit_code,
                             p.output.substr(0, 600));
      return json();
    }
    return last_record(o, o.work_dir, manifest);
  };
  int back_runs = 0;
  auto read_back = [&](ScenarioResult& r, const std::string& columns = kTypesColumns,
                       const std::string& list = kTypesList) -> std::string {
    if (!log_profile) {
      json rec = run_ok(r, "m_back.yaml");
      return rec.is_null() ? std::string() : dump(o.work_dir / "back.db", "t");
    }
    std::string name = fmt::format("back{}", ++back_runs);
    spit(o.work_dir / ("m_" + name + ".yaml"),
         header + from_target(name, "back.db", ", columns: " + columns,
                              "{mode: full_refresh, allow_shrink: true}"));
    json rec = run_ok(r, "m_" + name + ".yaml");
    return rec.is_null() ? std::string() : dump(o.work_dir / "back.db", "t", "doc", list, true);
  };

  bool connected = scenario("connect", [&](ScenarioResult& r) {
    if (!has_sink) return skip(r, "the connector has no sink to create test data with");
    Proc p = run(o, o.work_dir, {"doctor", "m_load.yaml"});
    r.status = p.exit_code == 0 ? "PASS" : "FAIL";
    auto at = p.output.find("manifest ");
    r.detail = p.exit_code == 0
                   ? "doctor probed the sink (and modules) successfully"
                   : "doctor failed: " + p.output.substr(at == std::string::npos ? 0 : at, 800);
  });
  const std::string load_name = log_profile ? "append_load" : "full_load";
  bool loaded =
      connected && scenario(load_name, [&](ScenarioResult& r) {
        json rec = run_ok(r, "m_load.yaml");
        if (rec.is_null()) return;
        int64_t staged = rec["streams"][0]["rows"].value("staged", int64_t{0});
        r.status = staged == 5 ? "PASS" : "FAIL";
        r.detail = fmt::format(
            "{} of the canonical 5-row data set into {}: {} rows staged",
            log_profile ? "append (log profile: the sink has no full_refresh)" : "full_refresh",
            table, staged);
      });
  if (!connected) {
    bool skipped = results.back().status == "SKIP";
    results.push_back(
        {load_name, skipped ? "SKIP" : "FAIL",
         skipped ? "needs a sink (" + results.back().detail + ")" : "not run: connect failed", 0});
  }
  scenario("discover", [&](ScenarioResult& r) {
    if (!loaded) return skip(r, "needs " + load_name);
    if (!has_source) return skip(r, "the connector has no source to discover with");
    Proc p = run(o, o.work_dir, {"plan", "m_back.yaml", "--format", "json"});
    if (p.exit_code != 0) {
      r.detail = "`dpone plan` failed: " + p.output.substr(0, 600);
      return;
    }
    // The types discovered on the table must be the logical types that were loaded. A
    // log's events are JSON, inferred from the values: a decimal is a JSON number (float64).
    const std::vector<std::pair<std::string, std::string>> expected = {
        {"id", "int64"},
        {"flag", "bool"},
        {"qty", "int64"},
        {"price", "float64"},
        {"amount", log_profile ? "float64" : "decimal(12,2)"},
        {"label", "string"},
        {"day", "date"},
        {"at", "timestamp"},
        {"at_tz", "timestamptz"},
        {"doc", "json"}};
    json cols = json::parse(p.output)["streams"][0]["source_schema"]["columns"];
    std::vector<std::string> wrong;
    for (const auto& [col, type] : expected) {
      std::string got = "missing";
      for (const auto& c : cols)
        if (c.value("name", "") == col) got = c.value("type", "");
      if (got != type) wrong.push_back(col + ": expected " + type + ", discovered " + got);
    }
    r.status = wrong.empty() ? "PASS" : "FAIL";
    r.detail =
        wrong.empty()
            ? fmt::format("discovered all {} columns with the logical types that were loaded",
                          expected.size())
            : fmt::format("discovered types differ: {}", fmt::join(wrong, "; "));
  });
  std::string reference;
  scenario("round_trip", [&](ScenarioResult& r) {
    if (!loaded) return skip(r, "needs " + load_name);
    if (!has_source) return skip(r, "the connector has no source to read the data back with");
    if (run(o, o.work_dir, {"run", "m_ref.yaml"}).exit_code != 0) {
      r.detail = "the reference load (files -> sqlite) failed";
      return;
    }
    reference = log_profile ? dump(o.work_dir / "ref.db", "t", "doc", kTypesList, true)
                            : dump(o.work_dir / "ref.db", "t");
    std::string back = read_back(r);
    if (back.empty()) return;
    std::string diff = first_difference(reference, back);
    r.status = diff.empty() ? "PASS" : "FAIL";
    r.detail =
        diff.empty()
            ? "every value of every type read back exactly (files -> " + d.name +
                  " -> sqlite equals files -> sqlite; json compared as JSON values" +
                  (log_profile ? "; read back with declared columns, a json null counts as NULL"
                               : "") +
                  ")"
            : "values differ after the round trip: " + diff;
  });
  scenario("incremental", [&](ScenarioResult& r) {
    if (!loaded) return skip(r, "needs " + load_name);
    const bool offsets = log_profile && has(incremental, "offsets");
    if (!has_source || !(has(incremental, "cursor") || offsets))
      return skip(r, "the connector declares no cursor (or, for a log, offsets) source");
    if (!has(strategies, "append"))
      return skip(r, "the connector's sink has no append to add rows with");
    spit(o.work_dir / "data" / "more.csv",
         std::string(kTypesHeader) +
             "6,true,6,6,6.00,six,2026-11-06,2026-11-06 00:00:00,2026-11-06T00:00:00Z,{}\n"
             "7,false,7,7,7.00,seven,2026-11-07,2026-11-07 00:00:00,2026-11-07T00:00:00Z,{}\n");
    spit(o.work_dir / "m_more.yaml", header + to_target("more", "more.csv", "{mode: append}"));
    spit(o.work_dir / "m_inc.yaml",
         header + from_target("inc", "inc.db",
                              offsets ? log_columns : ", incremental: cursor, cursor: id",
                              "{mode: append}"));
    json first = run_ok(r, "m_inc.yaml");
    if (first.is_null()) return;
    if (run_ok(r, "m_more.yaml").is_null()) return;
    json second = run_ok(r, "m_inc.yaml");
    if (second.is_null()) return;
    json third = run_ok(r, "m_inc.yaml");
    if (third.is_null()) return;
    int64_t a = first["streams"][0]["rows"].value("staged", int64_t{-1});
    int64_t b = second["streams"][0]["rows"].value("staged", int64_t{-1});
    int64_t c = third["streams"][0]["rows"].value("staged", int64_t{-1});
    r.status = a == 5 && b == 2 && c == 0 ? "PASS" : "FAIL";
    r.detail = fmt::format("{} over three runs read {}, {} and {} rows (expected 5, 2, 0)",
                           offsets ? "offset windows" : "cursor on id", a, b, c);
  });
  scenario("merge", [&](ScenarioResult& r) {
    if (!loaded) return skip(r, "needs " + load_name);
    if (!has(strategies, "merge")) return skip(r, "the connector's sink declares no merge");
    spit(o.work_dir / "data" / "merge.csv",
         std::string(kTypesHeader) +
             "1,false,1,1,1.00,changed,2026-11-01,2026-11-01 10:00:00,2026-11-01T10:00:00Z,{}\n"
             "8,true,8,8,8.00,eight,2026-11-08,2026-11-08 00:00:00,2026-11-08T00:00:00Z,{}\n");
    spit(o.work_dir / "m_merge.yaml",
         header + to_target("merge", "merge.csv", "{mode: merge, unique_key: id}"));
    json rec = run_ok(r, "m_merge.yaml");
    if (rec.is_null()) return;
    const json& rows = rec["streams"][0]["rows"];
    bool counts = rows.value("inserted", -1) == 1 && rows.value("updated", -1) == 1;
    r.status = counts ? "PASS" : "FAIL";
    r.detail = fmt::format("merge by id of 1 changed + 1 new row: {} inserted, {} updated",
                           rows.value("inserted", -1), rows.value("updated", -1));
    if (counts && has_source) {
      std::string back = read_back(r);
      auto row = back.find("\n1,");
      bool changed =
          row != std::string::npos &&
          back.substr(row, back.find('\n', row + 1) - row).find(",changed,") != std::string::npos;
      if (!changed) {
        r.status = "FAIL";
        r.detail += "; the changed row did not read back changed";
      } else {
        r.detail += "; the changed row reads back changed";
      }
    }
  });
  if (log_profile)
    scenario("failure_and_rerun", [&](ScenarioResult& r) {
      if (!loaded) return skip(r, "needs " + load_name);
      if (!has_source) return skip(r, "the connector has no source to read the log back with");
      spit(o.work_dir / "data" / "fail.csv",
           std::string(kTypesHeader) +
               "10,true,10,10,10.00,ten,2026-11-10,2026-11-10 00:00:00,2026-11-10T00:00:00Z,{}\n");
      spit(o.work_dir / "m_fail.yaml", header + to_target("fail", "fail.csv", "{mode: append}"));
      auto fail_at = [&](const std::string& point) {
        Proc p =
            run(o, o.work_dir, {"run", "m_fail.yaml"}, {{"DPONE_FAILPOINTS", point + "=error"}});
        if (p.exit_code == 1 &&
            p.output.find("failpoint '" + point + "' triggered") != std::string::npos)
          return true;
        r.detail = fmt::format(
            "a failure injected at {} should fail the run (exit 1, failpoint named), got exit {}: "
            "{}",
            point, p.exit_code, p.output.substr(0, 400));
        return false;
      };
      // Before delivery: nothing reaches the log; the re-run delivers the row once.
      if (!fail_at("after_cleanup")) return;
      std::string back = read_back(r);
      if (back.empty()) return;
      if (count_of(back, "\n10,") != 0) {
        r.detail = "a run that failed before delivery left its event in the log";
        return;
      }
      json rec = run_ok(r, "m_fail.yaml");
      if (rec.is_null()) return;
      back = read_back(r);
      if (count_of(back, "\n10,") != 1) {
        r.detail = fmt::format(
            "after a failure before delivery and a re-run, the event is in the log {} times "
            "(expected once)",
            count_of(back, "\n10,"));
        return;
      }
      // After delivery (before the promotion): the run fails, its events stay, the re-run
      // delivers them again: at-least-once, never lost.
      if (!fail_at("before_promote")) return;
      back = read_back(r);
      int after_failure = count_of(back, "\n10,");
      rec = run_ok(r, "m_fail.yaml");
      if (rec.is_null()) return;
      back = read_back(r);
      int after_rerun = count_of(back, "\n10,");
      r.status = after_failure == 2 && after_rerun == 3 ? "PASS" : "FAIL";
      r.detail = fmt::format(
          "a failure before delivery left the log unchanged and the re-run delivered the event "
          "once; a failure after "
          "delivery left its event ({} copies, expected 2) and the re-run delivered it again ({} "
          "copies, expected 3: "
          "at-least-once across failures, as an append-only log sink documents)",
          after_failure, after_rerun);
    });
  else
    scenario("failure_and_rerun", [&](ScenarioResult& r) {
      if (!loaded) return skip(r, "needs " + load_name);
      if (!has(strategies, "append")) return skip(r, "the connector's sink has no append");
      spit(o.work_dir / "data" / "fail.csv",
           std::string(kTypesHeader) +
               "10,true,10,10,10.00,ten,2026-11-10,2026-11-10 00:00:00,2026-11-10T00:00:00Z,{}\n");
      // new_files: the file is one window, loaded once (a full read would append it again on
      // every successful run, the recovered one included).
      spit(o.work_dir / "m_fail.yaml",
           header + to_target("fail", "fail.csv", "{mode: append}", "new_files"));
      std::string before = has_source ? read_back(r) : "";
      Proc failed = run(o, o.work_dir, {"run", "m_fail.yaml"},
                        {{"DPONE_FAILPOINTS", "inside_promote=error"}});
      if (failed.exit_code != 1 ||
          failed.output.find("failpoint 'inside_promote' triggered") == std::string::npos) {
        r.detail = fmt::format(
            "a failure injected inside the promotion should fail the run (exit 1, failpoint "
            "named), "
            "got exit {}: {}",
            failed.exit_code, failed.output.substr(0, 400));
        return;
      }
      // A sink with transactions rolls back: the target is unchanged and the re-run loads
      // the row. One without (ClickHouse) may have changed the target: the re-run must then
      // decide the interrupted promotion from its intent and not load the row again.
      const bool changed = has_source && read_back(r) != before;
      json rec = run_ok(r, "m_fail.yaml");
      if (rec.is_null()) return;
      const json& stream = rec["streams"][0];
      int64_t inserted = stream["rows"].value("inserted", int64_t{0});
      const bool recovered = stream.contains("promotion_recovery") && stream.contains("recovery");
      std::string after = has_source ? read_back(r) : "";
      bool once = !has_source || (after.find("\n10,") != std::string::npos &&
                                  after.find("\n10,") == after.rfind("\n10,"));
      r.status = once && (changed ? recovered && inserted == 0 : inserted == 1) ? "PASS" : "FAIL";
      r.detail =
          changed
              ? fmt::format(
                    "failure inside promotion left the change made (no transaction); the re-run "
                    "{} it from the intent and inserted {} row(s){}",
                    recovered ? "completed" : "did NOT complete", inserted,
                    once ? ", the row present exactly once"
                         : ", but the row is not present exactly once")
              : fmt::format(
                    "failure inside promotion left the target unchanged{}; the re-run inserted {} "
                    "row{}",
                    has_source ? " (read back)" : "", inserted,
                    has_source ? ", present exactly once" : "");
    });
  scenario("schema_change", [&](ScenarioResult& r) {
    if (!loaded) return skip(r, "needs " + load_name);
    if (!has(strategies, "append")) return skip(r, "the connector's sink has no append");
    spit(o.work_dir / "data" / "wider.csv",
         "id,flag,qty,price,amount,label,day,at,at_tz,doc,note\n9,true,9,9,9.00,nine,2026-11-09,"
         "2026-11-09 00:00:00,2026-11-09T00:00:00Z,{},new column\n");
    spit(
        o.work_dir / "m_wider.yaml",
        header +
            fmt::format(
                "  - name: wider\n    source: {{connector: files, path: data/wider.csv, columns: "
                "{}}}\n"
                "    sink: {{connector: {}, connection: {}, {}: {}, strategy: {{mode: append}}}}\n",
                std::string(kTypesColumns).substr(0, std::string(kTypesColumns).size() - 1) +
                    ", note: string}",
                d.name, o.connection, target_key, table));
    json rec = run_ok(r, "m_wider.yaml");
    if (rec.is_null()) return;
    if (log_profile) {
      // A log has no schema to alter: the new field travels in the events themselves.
      if (!has_source)
        return skip(r, "a log sink without a source: the new field cannot be read back");
      std::string cols =
          std::string(kTypesColumns).substr(0, std::string(kTypesColumns).size() - 1) +
          ", note: string}";
      std::string back = read_back(r, cols, std::string(kTypesList) + ",note");
      bool found =
          back.find("\n9,") != std::string::npos && back.find(",new column\n") != std::string::npos;
      r.status = found ? "PASS" : "FAIL";
      r.detail = found ? "an event with a new field was appended (no DDL: a log has no schema) and "
                         "reads back with it"
                       : "the new field `note` did not read back: " + back.substr(0, 300);
      return;
    }
    const json& ddl = rec["streams"][0]["schema"]["ddl"];
    bool added = ddl.is_array() && ddl.size() == 1 &&
                 ddl[0].get<std::string>().find("note") != std::string::npos;
    r.status = added ? "PASS" : "FAIL";
    r.detail = added ? "a new nullable column was added by: " + ddl[0].get<std::string>()
                     : "expected one ADD COLUMN for `note`, the run applied: " + ddl.dump();
  });
  scenario("wrong_credentials", [&](ScenarioResult& r) {
    const json fields = d.json.value("connection", json::object()).value("fields", json::object());
    if (!fields.contains("password") || !has_sink)
      return skip(r, "the connection has no password to get wrong");
    std::string id = o.connection;
    for (auto& c : id)
      c = std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::toupper(c)) : '_';
    const std::string wrong = fmt::format("dpone-wrong-{:08x}", rd());
    Proc p =
        run(o, o.work_dir, {"doctor", "m_load.yaml"}, {{"DPONE_CONN_" + id + "_PASSWORD", wrong}});
    if (p.exit_code == 0)
      return skip(
          r,
          "a wrong password was accepted: this connection does not authenticate by password "
          "(SQLite, or a role the server trusts), so the error cannot be observed");
    bool clear = p.output.find("UNAVAILABLE") != std::string::npos &&
                 p.output.find(wrong) == std::string::npos;
    r.status = clear ? "PASS" : "FAIL";
    r.detail = clear ? "a wrong password gives a clear *_UNAVAILABLE error that does not contain "
                       "the password"
                     : "unclear error, or the password was printed: " + p.output.substr(0, 400);
  });
  return results;
}

json certification_json(const CertifyOptions& o, const std::vector<ScenarioResult>& results) {
  json arr = json::array();
  int pass = 0, fail = 0, skip = 0;
  for (const auto& r : results) {
    arr.push_back(
        {{"scenario", r.name}, {"status", r.status}, {"detail", r.detail}, {"seconds", r.seconds}});
    pass += r.status == "PASS";
    fail += r.status == "FAIL";
    skip += r.status == "SKIP";
  }
  return {{"connector", o.connector},
          {"connection", o.connection},
          {"certified_at", now_iso8601()},
          {"passed", fail == 0},
          {"counts", {{"pass", pass}, {"fail", fail}, {"skip", skip}}},
          {"scenarios", arr}};
}

std::string certification_markdown(const CertifyOptions& o,
                                   const std::vector<ScenarioResult>& results) {
  json j = certification_json(o, results);
  std::string md = fmt::format(
      "# Certification of `{}` (connection `{}`)\n\n{}: {} pass, {} fail, {} skip ({})\n\n",
      o.connector, o.connection, j["passed"].get<bool>() ? "PASSED" : "FAILED",
      j["counts"]["pass"].get<int>(), j["counts"]["fail"].get<int>(),
      j["counts"]["skip"].get<int>(), j["certified_at"].get<std::string>());
  md += "| scenario | result | seconds | detail |\n|---|---|---:|---|\n";
  for (const auto& r : results) {
    std::string detail = r.detail;
    for (auto& c : detail)
      if (c == '\n' || c == '|') c = ' ';
    md += fmt::format("| {} | {} | {:.2f} | {} |\n", r.name, r.status, r.seconds, detail);
  }
  md +=
      "\nA SKIP is not a pass: it names what the connector does not declare or what could not be "
      "observed.\n";
  return md;
}

}  // namespace dpone
