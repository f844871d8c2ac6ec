// The rest connector: a source reading JSON records from HTTP APIs (README.md).
//
// Layers, each testable on its own:
//   - rest_http.cpp: one libcurl handle per source, GET with retries (exponential backoff
//     with jitter; 429 and 503 honour Retry-After), a requests-per-second limit, URL and
//     Link-header helpers. Messages carry the display URL (secrets masked), never the
//     real one.
//   - rest_records.cpp: records_path, the column layout (inferred and/or declared) of the
//     root table or of one child table (normalize: child_tables), and row emission in
//     the canonical cell forms (core/types.hpp).
//   - rest_source.cpp: options, pagination styles and stop conditions, the Source and
//     its streaming BatchReader (one page in memory at a time).
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector/registry.hpp"
#include "core/connector/source.hpp"
#include "core/record_batch.hpp"
#include "core/types.hpp"

namespace dpone {

// Registers the "rest" source factory (the module entry point calls it).
void register_rest_connector(ConnectorRegistry& registry);

std::unique_ptr<Source> make_rest_source(const SourceContext& context);

namespace rest {

// Response bodies keep the key order of the API (json columns are "compact as given").
using Json = nlohmann::ordered_json;

// ------------------------------------------------------------------------------ HTTP

struct HttpResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased
  std::string body;
  // The first header of that (case-insensitive) name, or nullopt.
  std::optional<std::string> header(std::string_view name) const;
  // Every header of that name (Link may be repeated).
  std::vector<std::string> headers_named(std::string_view name) const;
};

struct RetryPolicy {
  int retries = 5;                 // attempts after the first
  double backoff_initial_s = 0.5;  // delay before the first retry (before jitter)
  double backoff_max_s = 30;       // cap of the exponential delay
  double retry_after_max_s = 300;  // a longer Retry-After fails instead of sleeping
};

struct HttpOptions {
  double timeout_s = 30;  // whole request, connect included
  double connect_timeout_s = 10;
  // Where each timeout was set, for TIMED_OUT messages ("stream option `timeout_s`",
  // "connection field `request_timeout`").
  std::string timeout_from = "default of stream option `timeout_s`";
  std::string connect_timeout_from = "default of stream option `connect_timeout_s`";
  // A timed-out request is retried only when the retry can end within this many seconds
  // of the page's first attempt, so an API that accepts connections and never answers
  // ends the run in well under a minute instead of retries x timeout_s.
  double timeout_retry_budget_s = 60;
  bool verify_tls = true;
  double rate_limit = 0;  // requests per second; 0 = unlimited
  RetryPolicy retry;
};

// One request, as the error messages and the request log see it.
struct RequestContext {
  std::string where;        // "stream 'orders': rest source"
  std::string display_url;  // the URL with secrets replaced by ***
  int64_t page = 0;         // 1-based page number of the run
};

// A reusable GET client over one libcurl easy handle (connections are kept alive).
// Retries network errors (timeouts included), 408, 429 and 5xx; other statuses fail at
// once. When retries run out it throws Error(SourceReadFailed) (an HTTP status) or
// Error(SourceUnavailable) (no response) naming the display URL, page and status.
class HttpClient {
 public:
  explicit HttpClient(HttpOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // `headers` are "Name: value" lines. Returns only 2xx responses.
  HttpResponse get(const std::string& url, const std::vector<std::string>& headers,
                   const RequestContext& context);

  int64_t requests() const { return requests_; }
  int64_t retries() const { return retries_; }
  // Tests replace the sleep to observe delays without waiting.
  void set_sleeper(std::function<void(double)> sleeper) { sleep_ = std::move(sleeper); }

 private:
  struct Handle;
  std::unique_ptr<Handle> handle_;
  HttpOptions options_;
  std::mt19937_64 rng_;
  std::function<void(double)> sleep_;
  double last_request_at_ = -1;  // monotonic seconds, for the rate limit
  int64_t requests_ = 0, retries_ = 0;

  void throttle();
};

// Seconds to wait for a Retry-After value: delta-seconds ("120") or an HTTP-date
// ("Wed, 21 Oct 2015 07:28:00 GMT", relative to `now`). nullopt when unparsable.
std::optional<double> parse_retry_after(std::string_view value, std::time_t now);

// Delay before retry number `attempt` (1-based): min(max, initial * 2^(attempt-1)),
// scaled by a uniform factor in [0.5, 1] ("equal jitter": never zero, never in lockstep).
double backoff_delay(const RetryPolicy& policy, int attempt, std::mt19937_64& rng);

// RFC 8288: the target URI of the link with relation "next" in a Link header value
// (several links, quoted or unquoted parameters, rel lists such as rel="next last").
std::optional<std::string> link_next(std::string_view link_header);

// `ref` resolved against `base` (RFC 3986: absolute, absolute-path or relative).
std::string resolve_url(const std::string& base, const std::string& ref);

// Percent-encodes a query component (RFC 3986 unreserved characters stay).
std::string url_encode(std::string_view text);

// `url` with `params` appended as query parameters (after any it already has).
std::string append_query(const std::string& url,
                         const std::vector<std::pair<std::string, std::string>>& params);

// The value of query parameter `name` in `url` (decoded), or nullopt.
std::optional<std::string> query_param(const std::string& url, const std::string& name);

// ------------------------------------------------------------------------------ records

// The array at `path` (dot-separated object keys; empty = the body itself) of a page.
// Returns nullptr when the path ends at null (an empty page). Throws
// Error(InputMalformed) naming `where` when a key is missing or the value is no array.
const Json* records_at(const Json& body, const std::string& path, const std::string& where);

// The value at a dot path inside `value`, or nullptr when any step is missing.
const Json* value_at(const Json& value, const std::vector<std::string>& path, size_t from = 0);
std::vector<std::string> split_path(const std::string& dotted);

enum class Normalize { Json, ChildTables };

// How one output column takes its value from a record.
struct ColumnSource {
  enum class Kind {
    Field,        // the value at `path` (flattened object keys under child_tables)
    ListLength,   // child_tables: number of elements of the list at `path`; NULL if absent
    ParentKey,    // child table: the parent record's primary-key value at `path`
    Index,        // child table: the element's position in the list (0-based)
    ElementValue  // child table: the element itself, when elements are not objects
  };
  Kind kind = Kind::Field;
  std::vector<std::string> path;  // in the root record (Field of a child: in the element)
};

// The columns one stream loads: the root records, or one child table.
struct Layout {
  Schema schema;
  std::vector<ColumnSource> sources;   // parallel to schema.columns
  std::vector<std::string> list_path;  // child table: the list in the root record; else empty
  // Filled by index_layout(): first path segment -> the Field/ListLength columns it feeds
  // (record level for the root table, element level for a child table). With it a record
  // is read in one pass over its keys instead of one key search per column (ordered_json
  // objects search linearly, which is quadratic for wide records).
  std::unordered_map<std::string, std::vector<size_t>> by_key;
};

void index_layout(Layout& layout);

struct LayoutOptions {
  Normalize normalize = Normalize::Json;
  std::string child_table;  // empty = the root table; else a list's flattened name
  std::vector<std::pair<std::string, LogicalType>> declared;  // columns: name -> type
  bool infer = true;                                          // false: only the declared columns
  std::vector<std::string> primary_key;
};

// Infers the layout from sample records (objects of the first page(s)). Column order is
// the order keys are first seen; declared types override inferred ones; declared columns
// never seen are appended. Throws Error(ConfigInvalid/ConfigMissingKey) for a child table
// that does not exist in the sample or a parent without a primary key.
Layout infer_layout(const std::vector<const Json*>& records, const LayoutOptions& options,
                    const std::string& where);

// Names of the child tables (lists) seen in `records` under child_tables, in order.
std::vector<std::string> child_table_names(const std::vector<const Json*>& records);

// Appends the rows one record yields (1 for the root table, one per list element for a
// child table) to `batch`. Throws Error(TypeMismatch/TypeOverflow) naming `where`, the
// record's position and the column. Returns the number of rows appended.
size_t append_rows(const Layout& layout, const Json& record, RecordBatch& batch,
                   const std::string& where, std::string& scratch);

// Canonical cell text of a JSON value for `type` (ValueError text on failure).
// Returns false for null.
bool json_cell(const LogicalType& type, const Json& value, std::string& out, std::string& error);

// Orders cursor values: numbers numerically, everything else by its text (ISO-8601
// timestamps of one format order correctly as text). True when a < b.
bool cursor_less(const Json& a, const Json& b);

// The text `{{ state.cursor }}` is replaced with. Strings as is, numbers as JSON.
std::string cursor_text(const nlohmann::json& value);

}  // namespace rest
}  // namespace dpone
