#include "runtime/perf_advise.hpp"

#include <fmt/format.h>

namespace dpone {

namespace {

using json = nlohmann::json;

double phase_seconds(const json& stream, const std::string& name) {
  for (const auto& p : stream.value("phases", json::array()))
    if (p.value("name", "") == name) return p.value("duration_s", 0.0);
  return 0;
}

int64_t staged_rows(const json& stream) { return stream.value("rows", json::object()).value("staged", int64_t{0}); }

// Rows per second of the stage phase (extract + load into staging), or 0.
double stage_rate(const json& stream) {
  double s = phase_seconds(stream, "stage");
  return s > 0 ? staged_rows(stream) / s : 0;
}

// Large loads where the client process was mostly idle: the time went to the servers
// (or the network), so more client-side work in parallel is what can help.
constexpr int64_t kLargeRows = 1'000'000;

}  // namespace

json Advice::to_json() const {
  return {{"stream", stream}, {"rule", rule}, {"recommendation", recommendation}, {"evidence", evidence}};
}

std::vector<Advice> advise(const json& record, const std::vector<json>& history, const ConnectorCatalog& catalog) {
  auto has_parallel_reads = [&](const std::string& connector) {
    const auto* d = catalog.find(connector);
    return d && d->source_options().contains("parallel");
  };
  auto declares_produce = [&](const std::string& connector, const std::string& spec) {
    const auto* d = catalog.find(connector);
    if (!d) return false;
    for (const auto& p : d->json.value("source", json::object()).value("produces", json::array()))
      if (p.is_string() && p.get<std::string>() == spec) return true;
    return false;
  };
  std::vector<Advice> out;
  for (const auto& s : record.value("streams", json::array())) {
    if (s.value("status", "") != "succeeded") continue;
    const std::string name = s.value("stream", "");
    const json rows = s.value("rows", json::object());
    const int64_t staged = staged_rows(s);
    const double wall = s.value("duration_s", 0.0);
    const std::string mode = s.value("strategy", json::object()).value("mode", "");

    // 1. A large single-stream load with an idle client.
    if (staged >= kLargeRows && s.contains("cpu_s") && wall > 0) {
      double cpu = s.value("cpu_s", 0.0);
      double busy = cpu / wall;
      if (busy < 0.5) {
        std::string connector = s.value("source", json::object()).value("connector", "");
        std::string what =
            has_parallel_reads(connector)
                ? "set `source.parallel: 2` (or more) to split the read of this table across workers"
                : "this table would gain from a parallel read, which the " + connector +
                      " connector does not offer yet; meanwhile split it into streams by key range "
                      "(`query:` with a WHERE per range) that run as separate `dpone run --select` jobs";
        out.push_back({name, "parallel_reads_for_large_table",
                       fmt::format("{}: one stream kept dpone's CPU only {:.0f}% busy while the servers did the rest",
                                   what, busy * 100),
                       fmt::format("{} rows in {:.2f}s wall with {:.2f}s of dpone CPU ({:.0f}%); stage {:.2f}s, "
                                   "promote {:.2f}s",
                                   staged, wall, cpu, busy * 100, phase_seconds(s, "stage"),
                                   phase_seconds(s, "promote"))});
      }
    }

    // 2. A merge that rewrote most of a fully-read target: full_refresh writes once.
    const std::string incremental = s.value("source", json::object()).value("incremental", "");
    const json target = s.value("target", json::object());
    if (mode == "merge" && incremental == "full" && target.contains("rows_before")) {
      int64_t before = target.value("rows_before", int64_t{0});
      int64_t touched = rows.value("inserted", int64_t{0}) + rows.value("updated", int64_t{0});
      int64_t after = before + rows.value("inserted", int64_t{0});
      if (after > 0 && touched * 2 >= after) {
        out.push_back({name, "merge_touches_most_rows",
                       "use `strategy: {mode: full_refresh}` for this stream: the source is read in full every "
                       "run and the merge rewrites most of the target, so one bulk write is cheaper than "
                       "key lookups for every row",
                       fmt::format("merge inserted {} and updated {} of {} target rows ({:.0f}%); promote took "
                                   "{:.2f}s of {:.2f}s",
                                   rows.value("inserted", int64_t{0}), rows.value("updated", int64_t{0}), after,
                                   100.0 * touched / after, phase_seconds(s, "promote"), wall)});
      }
    }

    // 3. Small batches on a large load: per-batch overhead.
    int64_t batch = s.value("batch_rows", int64_t{0});
    if (batch > 0 && batch < 1000 && staged >= 100'000) {
      out.push_back({name, "batch_rows_small",
                     "run with the default `--batch-rows 8192` (or larger): batches this small spend their time "
                     "on per-batch overhead",
                     fmt::format("{} rows moved in batches of {} ({} batches)", staged, batch, (staged + batch - 1) / batch)});
    }

    // 4. The sink's preferred (native) input was not used: the runtime fell back to a
    //    later choice because the source did not offer it for this stream.
    const json artifact = s.value("artifact", json::object());
    const json accepts = artifact.value("sink_accepts", json::array());
    const std::string source_connector = s.value("source", json::object()).value("connector", "");
    if (!accepts.empty() && accepts[0].is_string() &&
        accepts[0].get<std::string>() != artifact.value("sink_receives", "") &&
        declares_produce(source_connector, accepts[0].get<std::string>())) {
      out.push_back({name, "native_path_not_taken",
                     "the sink's native input " + accepts[0].get<std::string>() + " was not used although the " +
                         source_connector +
                         " source can produce it: it did not offer it for this stream (see the connector's docs "
                         "for when it does, e.g. compatible column types); matching it skips decoding rows",
                     fmt::format("sink accepts {}; source offered {}; chosen: {} ({})", accepts.dump(),
                                 artifact.value("source_offers", json::array()).dump(),
                                 artifact.value("sink_receives", ""), artifact.value("reason", ""))});
    }

    // 5. Throughput below what the same stream and path reached before.
    double rate = stage_rate(s);
    std::string path = s.value("artifact", json::object()).value("sink_receives", "");
    if (rate > 0 && staged >= 10'000) {
      double best = 0;
      std::string best_run;
      for (const auto& h : history) {
        if (h.value("run_id", "") == record.value("run_id", "")) continue;
        for (const auto& hs : h.value("streams", json::array())) {
          if (hs.value("stream", "") != name || hs.value("status", "") != "succeeded") continue;
          if (hs.value("artifact", json::object()).value("sink_receives", "") != path) continue;
          if (staged_rows(hs) < 10'000) continue;
          double r = stage_rate(hs);
          if (r > best) {
            best = r;
            best_run = h.value("run_id", "");
          }
        }
      }
      if (best > 0 && rate < 0.7 * best) {
        out.push_back({name, "throughput_below_previous",
                       "look at what changed since run " + best_run +
                           " (data volume per row, server load, indexes on the target, the machine): this path "
                           "moved rows faster then",
                       fmt::format("stage moved {:.0f} rows/s now vs {:.0f} rows/s in run {} ({:.0f}%), path {}",
                                   rate, best, best_run, 100 * rate / best, path)});
      }
    }
  }
  return out;
}

}  // namespace dpone
