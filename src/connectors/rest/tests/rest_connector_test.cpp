// Tests of the rest connector against the in-process fixture server (fixture_server.hpp):
// helpers (Link header, Retry-After, backoff, URLs), every pagination style, retries,
// timeouts, malformed pages, auth and masking, child tables, incremental cursors.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <thread>

#include "connectors/rest/rest_connector.hpp"
#include "connectors/rest/tests/fixture_server.hpp"
#include "core/errors.hpp"
#include "core/util/redactor.hpp"

using dpone::Error;
using dpone::ErrorCode;
using dpone::ResolvedConnection;
using dpone::Schema;
using dpone::Secret;
using dpone::rest_fixture::FixtureServer;
using nlohmann::json;
namespace rest = dpone::rest;

namespace {

using Cell = std::optional<std::string>;
using Row = std::vector<Cell>;

struct Loaded {
  Schema schema;
  std::vector<Row> rows;
  json position;
  bool window_empty = false;
  std::vector<std::string> warnings;
  std::string column(size_t row, const std::string& name) const {
    int c = schema.find(name);
    if (c < 0 || row >= rows.size()) return "<missing>";
    const Cell& v = rows[row][static_cast<size_t>(c)];
    return v ? *v : "\\N";
  }
};

// Runs plan_window -> discover -> extract -> next_position as the runtime does.
Loaded load(const json& options, const ResolvedConnection* connection = nullptr,
            const json& position = nullptr, size_t batch_rows = 8) {
  dpone::Diagnostics diagnostics;
  dpone::SourceContext ctx{"s", options, connection, {}, &diagnostics};
  auto source = dpone::make_rest_source(ctx);
  dpone::Window w = source->plan_window(position);
  Loaded out;
  out.window_empty = w.empty;
  out.schema = source->discover();
  dpone::ExtractOptions eo;
  eo.batch_rows = batch_rows;
  auto artifact = source->extract(w, source->produces().front(), eo);
  auto& rows = std::get<dpone::StreamingRows>(artifact);
  while (auto batch = rows.batches->next()) {
    EXPECT_LE(batch->num_rows(), batch_rows + 8);  // one record may add several child rows
    for (size_t r = 0; r < batch->num_rows(); ++r) {
      Row row;
      for (size_t c = 0; c < batch->num_columns(); ++c) {
        if (batch->is_null(r, c))
          row.push_back(std::nullopt);
        else
          row.emplace_back(std::string(batch->cell(r, c)));
      }
      out.rows.push_back(std::move(row));
    }
  }
  out.position = source->next_position(w);
  out.warnings = diagnostics.warnings();
  return out;
}

json base_options(const FixtureServer& server, const std::string& path) {
  return json{{"base_url", server.url()}, {"path", path}, {"backoff_initial_s", 0.05}};
}

// Record i of the fixtures as the loaded row must hold it (canonical cell texts).
void expect_fixture_rows(const Loaded& l, int first, int last) {
  ASSERT_EQ(l.rows.size(), static_cast<size_t>(last - first + 1));
  ASSERT_EQ(l.schema.names(),
            (std::vector<std::string>{"id", "name", "score", "active", "updated_at"}));
  EXPECT_EQ(l.schema.columns[0].type.to_string(), "int64");
  EXPECT_EQ(l.schema.columns[2].type.to_string(), "float64");
  EXPECT_EQ(l.schema.columns[3].type.to_string(), "bool");
  EXPECT_EQ(l.schema.columns[4].type.to_string(), "timestamptz");
  for (int i = first; i <= last; ++i) {
    size_t r = static_cast<size_t>(i - first);
    EXPECT_EQ(l.column(r, "id"), std::to_string(i));
    EXPECT_EQ(l.column(r, "name"), "item-" + std::to_string(i));
    char score[32];
    std::snprintf(score, sizeof score, "%g", i * 1.5);
    EXPECT_EQ(l.column(r, "score"), score);
    EXPECT_EQ(l.column(r, "active"), i % 2 == 0 ? "true" : "false");
    EXPECT_EQ(l.column(r, "updated_at"),
              dpone::rest_fixture::record(i)["updated_at"].get<std::string>());
  }
}

}  // namespace

// ------------------------------------------------------------------------- helpers

TEST(RestHelpers, LinkHeaderNext) {
  EXPECT_EQ(
      rest::link_next(R"(<https://a/x?page=2>; rel="next", <https://a/x?page=9>; rel="last")"),
      "https://a/x?page=2");
  EXPECT_EQ(rest::link_next(R"(<https://a/x?page=9>; rel="last", <https://a/x?page=2>; rel=next)"),
            "https://a/x?page=2");
  EXPECT_EQ(rest::link_next(R"(<https://a/p3>; title="a, b"; rel="prev next")"), "https://a/p3");
  EXPECT_EQ(rest::link_next(R"(<https://a/p1>; rel="prev", <https://a/p9>; rel="last")"),
            std::nullopt);
  EXPECT_EQ(rest::link_next(""), std::nullopt);
}

TEST(RestHelpers, RetryAfterAndBackoff) {
  EXPECT_EQ(rest::parse_retry_after("7", 0), 7.0);
  EXPECT_EQ(rest::parse_retry_after(" 0 ", 0), 0.0);
  // 2015-10-21T07:28:00Z is 1445412480.
  EXPECT_EQ(rest::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 30), 30.0);
  EXPECT_EQ(rest::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 30), 0.0);
  EXPECT_EQ(rest::parse_retry_after("soon", 0), std::nullopt);
  rest::RetryPolicy p;
  p.backoff_initial_s = 1;
  p.backoff_max_s = 10;
  std::mt19937_64 rng(42);
  for (int i = 0; i < 50; ++i) {
    double d1 = rest::backoff_delay(p, 1, rng), d3 = rest::backoff_delay(p, 3, rng),
           d9 = rest::backoff_delay(p, 9, rng);
    EXPECT_GE(d1, 0.5);
    EXPECT_LE(d1, 1.0);
    EXPECT_GE(d3, 2.0);
    EXPECT_LE(d3, 4.0);
    EXPECT_GE(d9, 5.0);
    EXPECT_LE(d9, 10.0);
  }
}

TEST(RestHelpers, Urls) {
  EXPECT_EQ(rest::resolve_url("http://h:1/a/b?x=1", "/next?start=11"), "http://h:1/next?start=11");
  EXPECT_EQ(rest::resolve_url("http://h:1/a/b?x=1", "c?y=2"), "http://h:1/a/c?y=2");
  EXPECT_EQ(rest::resolve_url("http://h:1/a", "https://o/z"), "https://o/z");
  EXPECT_EQ(rest::append_query("http://h/p", {{"a", "1 2"}, {"b", "x&y/z"}}),
            "http://h/p?a=1%202&b=x%26y%2Fz");
  EXPECT_EQ(rest::append_query("http://h/p?q=1", {{"a", "2"}}), "http://h/p?q=1&a=2");
  EXPECT_EQ(rest::query_param("http://h/p?a=1%202&b=x", "a"), "1 2");
  EXPECT_EQ(rest::query_param("http://h/p?a=1", "b"), std::nullopt);
}

TEST(RestHelpers, RecordsPathAndCursorOrder) {
  auto body = rest::Json::parse(R"({"data": {"items": [{"id": 1}], "none": null, "n": 3}})");
  EXPECT_EQ(rest::records_at(body, "data.items", "w")->size(), 1u);
  EXPECT_EQ(rest::records_at(body, "data.none", "w"), nullptr);
  try {
    rest::records_at(body, "data.missing", "page 4");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InputMalformed);
    EXPECT_NE(std::string(e.what()).find("page 4"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("keys there: items, none, n"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(rest::records_at(body, "data.n", "w"), Error);
  EXPECT_TRUE(rest::cursor_less(rest::Json(9), rest::Json(10)));
  EXPECT_TRUE(
      rest::cursor_less(rest::Json("2026-01-01T00:09:00Z"), rest::Json("2026-01-01T00:10:00Z")));
  EXPECT_FALSE(rest::cursor_less(rest::Json(10.5), rest::Json(10)));
}

// ------------------------------------------------------------------------ pagination

namespace {

// Requests the server logged for one path (control requests excluded).
std::vector<dpone::rest_fixture::LogEntry> requests_to(const FixtureServer& server,
                                                       const std::string& path) {
  // The server logs a request after its response went out: let the last entry land.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::vector<dpone::rest_fixture::LogEntry> out;
  for (const auto& e : server.log())
    if (e.target.rfind(path, 0) == 0) out.push_back(e);
  return out;
}

}  // namespace

TEST(RestPagination, PageNumber) {
  FixtureServer server;
  json o = base_options(server, "/page");
  o["records_path"] = "data";
  o["pagination"] = {{"type", "page_number"}, {"size_param", "per_page"}, {"page_size", 10}};
  Loaded l = load(o);
  expect_fixture_rows(l, 1, 25);
  auto log = requests_to(server, "/page");
  ASSERT_EQ(log.size(), 3u) << server.log_text();  // the short third page ends it
  EXPECT_EQ(log[0].target, "/page?page=1&per_page=10");
  EXPECT_EQ(log[2].target, "/page?page=3&per_page=10");
}

TEST(RestPagination, PageNumberStopsOnEmptyPageWithoutPageSize) {
  FixtureServer server;
  json o = base_options(server, "/page");
  o["records_path"] = "data";
  o["pagination"] = {{"type", "page_number"}};
  Loaded l = load(o);
  expect_fixture_rows(l, 1, 25);
  EXPECT_EQ(requests_to(server, "/page").size(), 4u) << server.log_text();  // page 4 is empty
}

TEST(RestPagination, OffsetLimit) {
  FixtureServer server;
  json o = base_options(server, "/offset");
  o["records_path"] = "results";
  o["pagination"] = {{"type", "offset"}, {"page_size", 10}};
  Loaded l = load(o);
  expect_fixture_rows(l, 1, 25);
  auto log = requests_to(server, "/offset");
  ASSERT_EQ(log.size(), 3u) << server.log_text();
  EXPECT_EQ(log[1].target, "/offset?offset=10&limit=10");
}

TEST(RestPagination, CursorTokenInBody) {
  FixtureServer server;
  json o = base_options(server, "/cursor");
  o["records_path"] = "items";
  o["pagination"] = {{"type", "cursor"},
                     {"cursor_path", "meta.next_cursor"},
                     {"size_param", "limit"},
                     {"page_size", 7}};
  Loaded l = load(o);
  expect_fixture_rows(l, 1, 25);
  auto log = requests_to(server, "/cursor");
  ASSERT_EQ(log.size(), 4u) << server.log_text();  // 7+7+7+4, then next_cursor is null
  EXPECT_EQ(log[0].target, "/cursor?limit=7");
  EXPECT_EQ(log[1].target, "/cursor?limit=7&cursor=tok-8");
}

TEST(RestPagination, NextUrlInBody) {
  FixtureServer server;
  json o = base_options(server, "/next");
  o["records_path"] = "records";
  o["pagination"] = {{"type", "next_url"}, {"next_url_path", "links.next"}};
  Loaded l = load(o);
  expect_fixture_rows(l, 1, 25);
  auto log = requests_to(server, "/next");
  ASSERT_EQ(log.size(), 3u) << server.log_text();
  EXPECT_EQ(log[1].target, "/next?start=11");  // a relative link, resolved
}

TEST(RestPagination, LinkHeader) {
  FixtureServer server;
  json o = base_options(server, "/link");
  o["pagination"] = "link_header";
  Loaded l = load(o);
  expect_fixture_rows(l, 1, 25);
  auto log = requests_to(server, "/link");
  ASSERT_EQ(log.size(), 3u) << server.log_text();
  EXPECT_EQ(log[2].target, "/link?page=3");
}

TEST(RestPagination, MaxPagesStopsAndWarns) {
  FixtureServer server;
  json o = base_options(server, "/page");
  o["records_path"] = "data";
  o["pagination"] = {{"type", "page_number"}, {"max_pages", 2}};
  Loaded l = load(o);
  EXPECT_EQ(l.rows.size(), 20u);
  EXPECT_EQ(requests_to(server, "/page").size(), 2u);
  bool warned = std::any_of(l.warnings.begin(), l.warnings.end(), [](const std::string& w) {
    return w.find("max_pages (2)") != std::string::npos;
  });
  EXPECT_TRUE(warned);
}

TEST(RestPagination, InferencePageIsNotRequestedTwice) {
  FixtureServer server;
  json o = base_options(server, "/page");
  o["records_path"] = "data";
  o["infer_pages"] = 2;
  o["pagination"] = {{"type", "page_number"}, {"size_param", "per_page"}, {"page_size", 10}};
  Loaded l = load(o);
  expect_fixture_rows(l, 1, 25);
  EXPECT_EQ(requests_to(server, "/page").size(), 3u) << server.log_text();
  bool noted = std::any_of(l.warnings.begin(), l.warnings.end(), [](const std::string& w) {
    return w.find("columns inferred from 20 records of the first 2 pages: id int64") !=
           std::string::npos;
  });
  EXPECT_TRUE(noted);
}

TEST(RestPagination, DeclaredColumnsOverrideInference) {
  FixtureServer server;
  json o = base_options(server, "/page");
  o["records_path"] = "data";
  o["pagination"] = {{"type", "page_number"}, {"size_param", "per_page"}, {"page_size", 10}};
  o["columns"] = {{"score", "decimal(10,2)"}, {"name", "varchar(20)"}, {"missing_field", "string"}};
  o["primary_key"] = "id";
  Loaded l = load(o);
  ASSERT_EQ(l.rows.size(), 25u);
  EXPECT_EQ(l.schema.names(), (std::vector<std::string>{"id", "name", "score", "active",
                                                        "updated_at", "missing_field"}));
  EXPECT_EQ(l.schema.columns[2].type.to_string(), "decimal(10,2)");
  EXPECT_FALSE(l.schema.columns[0].nullable);
  EXPECT_EQ(l.schema.primary_key, std::vector<std::string>{"id"});
  EXPECT_EQ(l.column(1, "score"), "3.00");
  EXPECT_EQ(l.column(1, "missing_field"), "\\N");
}

// ------------------------------------------------------------------------ resilience

TEST(RestResilience, RetriesHonourRetryAfterAndLoadEveryRecordOnce) {
  FixtureServer server;
  json o = base_options(server, "/flaky");
  o["records_path"] = "data";
  o["pagination"] = {{"type", "page_number"}, {"page_size", 10}};
  Loaded l = load(o);
  expect_fixture_rows(l, 1, 25);
  auto log = requests_to(server, "/flaky");
  ASSERT_EQ(log.size(), 6u) << server.log_text();
  EXPECT_EQ(log[1].target, "/flaky?page=2");
  EXPECT_EQ(log[1].status, 429);
  EXPECT_EQ(log[2].status, 200);
  // Retry-After: 1 -> the retry came at least a second later (backoff alone is 0.05 s).
  EXPECT_GE(log[2].t - log[1].t, 0.95) << server.log_text();
  EXPECT_EQ(log[3].status, 500);
  EXPECT_EQ(log[4].status, 500);
  EXPECT_EQ(log[5].status, 200);
  EXPECT_LT(log[5].t - log[3].t, 0.9) << "500s use the short backoff:\n" << server.log_text();
}

TEST(RestResilience, PermanentFailureNamesUrlPageAndStatus) {
  FixtureServer server;
  json o = base_options(server, "/broken");
  o["records_path"] = "data";
  o["retries"] = 2;
  o["pagination"] = {{"type", "page_number"}, {"page_size", 10}};
  try {
    load(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(e.code(), ErrorCode::SourceReadFailed);
    EXPECT_NE(m.find(server.url() + "/broken?page=2"), std::string::npos) << m;
    EXPECT_NE(m.find("(page 2)"), std::string::npos) << m;
    EXPECT_NE(m.find("HTTP status 503 after 3 attempts"), std::string::npos) << m;
    EXPECT_NE(m.find("maintenance"), std::string::npos) << m;
  }
  EXPECT_EQ(requests_to(server, "/broken?page=2").size(), 3u);
}

TEST(RestResilience, SlowResponsePastTheTimeoutIsRetried) {
  FixtureServer server;
  json o = base_options(server, "/slow");
  o["records_path"] = "data";
  o["timeout_s"] = 1;
  o["pagination"] = {{"type", "page_number"}, {"page_size", 10}};
  Loaded l = load(o);
  expect_fixture_rows(l, 1, 25);
}

TEST(RestResilience, TimeoutWhenRetriesRunOut) {
  FixtureServer server;
  json o = base_options(server, "/slow");
  o["query"] = {{"always", "1"}};
  o["records_path"] = "data";
  o["timeout_s"] = 0.5;
  o["retries"] = 1;
  try {
    load(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    // A timeout names host:port, the phase, the attempt and the setting (issue 24).
    EXPECT_EQ(e.code(), ErrorCode::TimedOut);
    EXPECT_NE(m.find("/slow?always=1"), std::string::npos) << m;
    EXPECT_NE(m.find("HTTP request"), std::string::npos) << m;
    EXPECT_NE(m.find("attempt 2"), std::string::npos) << m;
    EXPECT_NE(m.find("after 0.5 s (set by stream option `timeout_s`)"), std::string::npos) << m;
    EXPECT_NE(e.hint().find("timeout_s"), std::string::npos) << e.hint();
  }
}

TEST(RestResilience, MalformedPageFails) {
  FixtureServer server;
  json o = base_options(server, "/malformed");
  o["records_path"] = "data";
  o["pagination"] = {{"type", "page_number"}, {"page_size", 10}};
  try {
    load(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(e.code(), ErrorCode::InputMalformed);
    EXPECT_NE(m.find("page 2 (GET " + server.url() + "/malformed?page=2"), std::string::npos) << m;
    EXPECT_NE(m.find("not valid JSON"), std::string::npos) << m;
  }
}

TEST(RestResilience, RateLimitSpacesRequests) {
  FixtureServer server;
  json o = base_options(server, "/page");
  o["records_path"] = "data";
  o["rate_limit"] = 5;  // 0.2 s apart
  o["pagination"] = {{"type", "page_number"}, {"size_param", "per_page"}, {"page_size", 10}};
  load(o);
  auto log = requests_to(server, "/page");
  ASSERT_EQ(log.size(), 3u);
  EXPECT_GE(log[2].t - log[0].t, 0.38) << server.log_text();
}

TEST(RestResilience, LaterPagesNewFieldWarnsAndWrongTypeFailsNamingTheCell) {
  FixtureServer server;
  json o = base_options(server, "/drift");
  o["records_path"] = "data";
  o["pagination"] = {{"type", "page_number"}, {"max_pages", 2}};
  Loaded l = load(o);  // pages 1-2: the new field is reported, not loaded
  EXPECT_EQ(l.rows.size(), 3u);
  EXPECT_EQ(l.schema.names(), (std::vector<std::string>{"id", "name"}));
  bool warned = std::any_of(l.warnings.begin(), l.warnings.end(), [](const std::string& w) {
    return w.find("field 'extra' first seen on page 2 is not a column") != std::string::npos;
  });
  EXPECT_TRUE(warned);
  o["pagination"] = {{"type", "page_number"}};
  try {
    load(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(e.code(), ErrorCode::TypeMismatch);
    EXPECT_NE(m.find("page 3 (GET " + server.url() + "/drift?page=3) record 2: column 'id'"),
              std::string::npos)
        << m;
    EXPECT_NE(e.hint().find("`columns`"), std::string::npos) << e.hint();
  }
}

// ------------------------------------------------------------------------ auth

namespace {

ResolvedConnection connection(const FixtureServer& server,
                              std::map<std::string, std::string> fields,
                              std::map<std::string, std::string> secrets) {
  ResolvedConnection c;
  c.id = "api";
  c.type = "rest";
  c.fields = std::move(fields);
  c.fields["base_url"] = server.url();
  for (auto& [k, v] : secrets) {
    dpone::Redactor::global().add(v);  // as ConnectionResolver::resolve() does
    c.secrets[k] = Secret(v);
  }
  return c;
}

}  // namespace

TEST(RestAuth, BearerBasicAndApiKey) {
  using namespace dpone::rest_fixture;
  FixtureServer server;
  auto bearer = connection(server, {}, {{"token", kToken}});
  EXPECT_EQ(load(json{{"path", "/auth/bearer"}}, &bearer).rows.size(), 5u);
  auto basic = connection(server, {{"username", kUser}}, {{"password", kPassword}});
  EXPECT_EQ(load(json{{"path", "/auth/basic"}}, &basic).rows.size(), 5u);
  auto header = connection(server, {{"auth", "api_key"}}, {{"api_key", kApiKey}});
  EXPECT_EQ(load(json{{"path", "/auth/key"}}, &header).rows.size(), 5u);
  auto query = connection(server, {{"api_key_in", "query"}}, {{"api_key", kApiKey}});
  EXPECT_EQ(load(json{{"path", "/auth/key"}}, &query).rows.size(), 5u);
  auto log = requests_to(server, "/auth/key");
  ASSERT_EQ(log.size(), 2u);
  // The server logs a request after answering it, so the two entries may land in either
  // order: one is the header request, the other carries the key in the query.
  std::set<std::string> targets{log[0].target, log[1].target};
  EXPECT_EQ(targets, (std::set<std::string>{"/auth/key", "/auth/key?api_key=k3y%2Fwith%2Bchars"}));
}

TEST(RestAuth, WrongCredentialsFailClearlyAndSecretsAreMasked) {
  using namespace dpone::rest_fixture;
  FixtureServer server;
  auto wrong = connection(server, {}, {{"token", "not-the-token"}});
  try {
    load(json{{"path", "/auth/bearer"}, {"retries", 0}}, &wrong);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::SourceReadFailed);
    EXPECT_NE(std::string(e.what()).find("HTTP status 401"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("credentials"), std::string::npos) << e.hint();
  }
  // The api key travels in the query of a failing URL: the message shows *** only.
  auto query = connection(server, {{"api_key_in", "query"}, {"api_key_name", "key"}},
                          {{"api_key", kApiKey}});
  try {
    load(json{{"path", "/broken"}, {"query", {{"page", "2"}}}, {"retries", 0}}, &query);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("/broken?page=2&key=***"), std::string::npos) << m;
    EXPECT_EQ(m.find(kApiKey), std::string::npos) << m;
    EXPECT_EQ(m.find("k3y%2Fwith%2Bchars"), std::string::npos) << m;
  }
}

// ------------------------------------------------------------------------ child tables

TEST(RestNormalize, JsonColumnsByDefault) {
  FixtureServer server;
  json o = base_options(server, "/nested");
  o["records_path"] = "orders";
  Loaded l = load(o);
  ASSERT_EQ(l.rows.size(), 4u);
  EXPECT_EQ(l.schema.names(),
            (std::vector<std::string>{"id", "customer", "lines", "tags", "meta"}));
  EXPECT_EQ(l.schema.columns[1].type.to_string(), "json");
  // Compact, in the API's key order.
  EXPECT_EQ(l.column(0, "customer"), R"({"name":"Ann","address":{"city":"Oslo","zip":"0150"}})");
  EXPECT_EQ(l.column(1, "lines"), "[]");
  EXPECT_EQ(l.column(2, "lines"), "\\N");
}

TEST(RestNormalize, ChildTablesParentAndChildren) {
  FixtureServer server;
  json o = base_options(server, "/nested");
  o["records_path"] = "orders";
  o["normalize"] = "child_tables";
  o["primary_key"] = "id";
  Loaded parent = load(o);
  EXPECT_EQ(parent.schema.names(),
            (std::vector<std::string>{"id", "customer__name", "customer__address__city",
                                      "customer__address__zip", "lines__count", "tags__count",
                                      "meta__source"}));
  auto dump = [](const Loaded& l) {
    std::string out;
    for (const auto& row : l.rows) {
      for (size_t c = 0; c < row.size(); ++c)
        out += (c ? "," : "") + (row[c] ? *row[c] : std::string("\\N"));
      out += "\n";
    }
    return out;
  };
  // Empty list (count 0) and missing field (NULL) stay distinguishable.
  EXPECT_EQ(dump(parent),
            "1,Ann,Oslo,0150,2,2,web\n"
            "2,Bo,Bergen,5003,0,1,app\n"
            "3,Cy,\\N,\\N,\\N,0,web\n"
            "4,Di,Tromsø,9008,1,\\N,phone\n");

  o["child_table"] = "lines";
  Loaded lines = load(o);
  EXPECT_EQ(lines.schema.names(),
            (std::vector<std::string>{"_parent_id", "_index", "sku", "qty", "price"}));
  EXPECT_EQ(lines.schema.primary_key, (std::vector<std::string>{"_parent_id", "_index"}));
  EXPECT_EQ(lines.schema.columns[0].type.to_string(), "int64");
  EXPECT_EQ(dump(lines),
            "1,0,A-1,2,9.5\n"
            "1,1,B-2,1,20\n"
            "4,0,C-3,5,1.25\n");

  o["child_table"] = "tags";
  Loaded tags = load(o);
  EXPECT_EQ(tags.schema.names(), (std::vector<std::string>{"_parent_id", "_index", "value"}));
  EXPECT_EQ(dump(tags), "1,0,new\n1,1,gift\n2,0,vip\n");

  o["child_table"] = "nope";
  try {
    load(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConfigInvalid);
    EXPECT_NE(std::string(e.what()).find("lists found: lines, tags"), std::string::npos)
        << e.what();
  }
}

// ------------------------------------------------------------------------ incremental

TEST(RestIncremental, SecondRunRequestsOnlyRecordsAfterTheCursor) {
  FixtureServer server;
  json o = base_options(server, "/incremental");
  o["records_path"] = "data";
  o["query"] = {{"updated_since", "{{ state.cursor }}"}};
  o["incremental"] = "cursor";
  o["cursor_field"] = "updated_at";
  o["pagination"] = {{"type", "page_number"}, {"page_size", 10}};
  Loaded first = load(o);
  expect_fixture_rows(first, 1, 25);
  EXPECT_EQ(first.position["cursor"], "2026-01-01T00:25:00Z");
  EXPECT_EQ(first.position["columns"][0], (json{"id", "int64", true}));
  EXPECT_EQ(requests_to(server, "/incremental")[0].target, "/incremental?page=1");  // no cursor yet

  server.grow(5);
  Loaded second = load(o, nullptr, first.position);
  expect_fixture_rows(second, 26, 30);
  EXPECT_EQ(second.position["cursor"], "2026-01-01T00:30:00Z");
  auto log = requests_to(server, "/incremental");
  ASSERT_EQ(log.size(), 4u) << server.log_text();
  EXPECT_EQ(log[3].target, "/incremental?updated_since=2026-01-01T00%3A25%3A00Z&page=1");

  // Nothing new: no rows, the position stays.
  Loaded third = load(o, nullptr, second.position);
  EXPECT_TRUE(third.window_empty);
  EXPECT_TRUE(third.rows.empty());
  EXPECT_EQ(third.schema, second.schema);
  EXPECT_EQ(third.position, second.position);
}

TEST(RestIncremental, InitialCursorAndConfigErrors) {
  FixtureServer server;
  json o = base_options(server, "/incremental");
  o["records_path"] = "data";
  o["query"] = {{"updated_since", "{{ state.cursor }}"}};
  o["cursor_field"] = "updated_at";
  o["initial_cursor"] = "2026-01-01T00:20:00Z";
  Loaded l = load(o);
  expect_fixture_rows(l, 21, 25);

  json bad = o;
  bad["query"] = {{"since", "{{ state.other }}"}};
  try {
    load(bad);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConfigTemplate);
  }
  // A first run on an API with nothing new: an empty window, no error, no position change.
  json future = o;
  future["initial_cursor"] = "2030-01-01T00:00:00Z";
  Loaded none = load(future);
  EXPECT_TRUE(none.window_empty);
  EXPECT_TRUE(none.rows.empty());
  EXPECT_TRUE(none.schema.columns.empty());

  json full = base_options(server, "/incremental");
  full["query"] = {{"updated_since", "{{ state.cursor }}"}};
  EXPECT_THROW(load(full), Error);
}
