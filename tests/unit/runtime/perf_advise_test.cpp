#include "runtime/perf_advise.hpp"

#include <gtest/gtest.h>

using nlohmann::json;

namespace {

dpone::ConnectorCatalog catalog() {
  return dpone::ConnectorCatalog::from_json(json::parse(R"({"abi": 1, "connectors": [
    {"built": true, "module": "libdpone_pg.so", "descriptor": {"name": "pg", "summary": "",
      "source": {"produces": ["streaming_rows/pg_copy_text", "streaming_rows/record_batch"], "options": {}},
      "sink": {"accepts": ["streaming_rows/pg_copy_text", "streaming_rows/record_batch"], "options": {}}}},
    {"built": true, "module": "libdpone_files.so", "descriptor": {"name": "files", "summary": "",
      "source": {"produces": ["streaming_rows/record_batch"], "options": {}}}}]})"));
}

json stream(const std::string& source, const std::string& receives) {
  return {{"stream", "s"}, {"status", "succeeded"}, {"duration_s", 1.0}, {"cpu_s", 0.9},
          {"source", {{"connector", source}, {"incremental", "full"}}},
          {"strategy", {{"mode", "append"}}}, {"rows", {{"staged", 10}}},
          {"phases", json::array({{{"name", "stage"}, {"duration_s", 0.5}}})},
          {"artifact", {{"sink_accepts", {"streaming_rows/pg_copy_text", "streaming_rows/record_batch"}},
                        {"source_offers", {"streaming_rows/record_batch"}},
                        {"sink_receives", receives}, {"reason", "r"}}}};
}

}  // namespace

TEST(PerfAdvise, NativePathNotTakenOnlyWhenTheSourceCouldProduceIt) {
  auto cat = catalog();
  json from_pg{{"run_id", "a"}, {"streams", json::array({stream("pg", "streaming_rows/record_batch")})}};
  auto advice = dpone::advise(from_pg, {}, cat);
  ASSERT_EQ(advice.size(), 1u);
  EXPECT_EQ(advice[0].rule, "native_path_not_taken");
  EXPECT_NE(advice[0].evidence.find("source offered [\"streaming_rows/record_batch\"]"), std::string::npos);
  // A files source can never produce COPY text: no advice.
  json from_files{{"run_id", "b"}, {"streams", json::array({stream("files", "streaming_rows/record_batch")})}};
  EXPECT_TRUE(dpone::advise(from_files, {}, cat).empty());
  // The native path taken: no advice.
  json native{{"run_id", "c"}, {"streams", json::array({stream("pg", "streaming_rows/pg_copy_text")})}};
  EXPECT_TRUE(dpone::advise(native, {}, cat).empty());
}

TEST(PerfAdvise, ThroughputBelowAnEarlierRunOfTheSamePath) {
  auto cat = catalog();
  auto with_rate = [](const std::string& run, int64_t rows, double stage_s) {
    json s = stream("files", "streaming_rows/record_batch");
    s["rows"]["staged"] = rows;
    s["phases"] = json::array({{{"name", "stage"}, {"duration_s", stage_s}}});
    s["artifact"]["sink_accepts"] = json::array({"streaming_rows/record_batch"});
    return json{{"run_id", run}, {"streams", json::array({s})}};
  };
  json now = with_rate("r2", 100000, 2.0);     // 50k rows/s
  json before = with_rate("r1", 100000, 1.0);  // 100k rows/s
  auto advice = dpone::advise(now, {now, before}, cat);
  ASSERT_EQ(advice.size(), 1u);
  EXPECT_EQ(advice[0].rule, "throughput_below_previous");
  EXPECT_NE(advice[0].evidence.find("50000 rows/s now vs 100000 rows/s in run r1 (50%)"), std::string::npos)
      << advice[0].evidence;
  EXPECT_TRUE(dpone::advise(before, {now, before}, cat).empty());
}
