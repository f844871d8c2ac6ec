// The rest source: pages of JSON records from an HTTP API.
//
// Windows: an API cannot be asked for its maximum cursor up front, so the window's upper
// bound is "whatever the API returns during this run". Full mode reads everything each
// run; cursor mode fills `{{ state.cursor }}` in the query, path or headers with the
// committed position and takes the new position from the largest `cursor_field` value
// among the records read, which the runtime commits only after promotion.
//
// discover() fetches the first `infer_pages` pages to infer the columns and keeps them;
// extract() replays them before fetching the rest, so no page is requested twice.
// Memory: the reader holds one page (body and parsed JSON) and one batch at a time.
#include <regex>
#include <set>

#include <fmt/format.h>

#include "connectors/rest/rest_connector.hpp"
#include "core/connector/options.hpp"
#include "core/connector/timeouts.hpp"
#include "core/errors.hpp"
#include "core/util/redactor.hpp"

namespace dpone {

namespace {

using rest::Json;

enum class PageStyle { None, PageNumber, Offset, Cursor, NextUrl, LinkHeader };

struct Pagination {
  PageStyle style = PageStyle::None;
  std::string page_param = "page";
  int64_t start_page = 1;
  std::string size_param;  // page_number / cursor: page size parameter (optional)
  int64_t page_size = 0;
  std::string offset_param = "offset";
  std::string limit_param = "limit";
  std::string cursor_param = "cursor";
  std::string cursor_path;  // where the next token is in the body
  std::string next_url_path = "next";
  int64_t max_pages = 0;  // 0 = no limit
  bool stop_on_short_page = true;
};

// Everything a request needs, shared by the source and its reader.
struct Settings {
  std::string where;
  std::string url;  // base_url + path, state template filled
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::string> headers;  // "Name: value", auth included
  std::string api_key_param;         // api_key in the query: its parameter name
  std::string api_key;               // and value (masked in display URLs)
  std::string records_path;
  Pagination pagination;
};

std::string base64(std::string_view in) {
  static const char* kTable = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  while (i + 2 < in.size()) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kTable[(n >> s) & 63];
    i += 3;
  }
  if (i + 1 == in.size()) {
    uint32_t n = uint8_t(in[i]) << 16;
    out += kTable[(n >> 18) & 63];
    out += kTable[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kTable[(n >> 18) & 63];
    out += kTable[(n >> 12) & 63];
    out += kTable[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

// The URL as messages show it: the api key (raw or percent-encoded) as ***.
std::string display_url(const Settings& s, const std::string& url) {
  std::string out = url;
  if (!s.api_key.empty()) {
    for (const std::string& secret : {rest::url_encode(s.api_key), s.api_key}) {
      for (size_t at = out.find(secret); at != std::string::npos; at = out.find(secret, at + 3))
        out.replace(at, secret.size(), "***");
    }
  }
  return redact(out);
}

// The request URL with the api key parameter added when it travels in the query.
std::string with_auth(const Settings& s, const std::string& url) {
  if (s.api_key_param.empty() || rest::query_param(url, s.api_key_param)) return url;
  return rest::append_query(url, {{s.api_key_param, s.api_key}});
}

struct Page {
  int64_t number = 0;
  std::string url;  // as requested (display form)
  rest::HttpResponse response;
  std::unique_ptr<Json> body;     // on the heap: `records` points into it across moves
  const Json* records = nullptr;  // inside body; null = no records
  size_t size() const { return records ? records->size() : 0; }
};

// Walks the pages of one run: builds each request, parses the page, decides the next one.
class Pager {
 public:
  Pager(std::shared_ptr<const Settings> settings, std::shared_ptr<rest::HttpClient> http,
        Diagnostics* diagnostics)
      : s_(std::move(settings)), http_(std::move(http)), diagnostics_(diagnostics) {
    const Pagination& p = s_->pagination;
    page_value_ = p.start_page;
    next_url_ = first_url();
  }

  int64_t pages() const { return number_; }

  std::optional<Page> next() {
    if (!next_url_) return std::nullopt;
    Page page;
    page.number = ++number_;
    std::string url = with_auth(*s_, *next_url_);
    page.url = display_url(*s_, url);
    next_url_.reset();
    rest::RequestContext ctx{s_->where, page.url, page.number};
    page.response = http_->get(url, s_->headers, ctx);
    try {
      page.body = std::make_unique<Json>(Json::parse(page.response.body));
    } catch (const Json::exception& e) {
      throw Error(
          ErrorCode::InputMalformed,
          redact(fmt::format("{}: page {} (GET {}, HTTP {}): the response is not valid "
                             "JSON: {}",
                             s_->where, page.number, page.url, page.response.status, e.what())),
          "the API returned a malformed page; nothing was loaded and the state is "
          "unchanged");
    }
    page.response.body.clear();
    page.response.body.shrink_to_fit();
    page.records =
        rest::records_at(*page.body, s_->records_path,
                         fmt::format("{}: page {} (GET {})", s_->where, page.number, page.url));
    plan_next(page, url);
    return page;
  }

 private:
  std::shared_ptr<const Settings> s_;
  std::shared_ptr<rest::HttpClient> http_;
  Diagnostics* diagnostics_;
  std::optional<std::string> next_url_;
  int64_t number_ = 0;
  int64_t page_value_ = 1;
  int64_t offset_ = 0;
  std::string last_token_;
  std::set<std::string> seen_urls_;

  std::string first_url() {
    const Pagination& p = s_->pagination;
    auto params = s_->query;
    switch (p.style) {
      case PageStyle::PageNumber:
        params.emplace_back(p.page_param, std::to_string(page_value_));
        if (!p.size_param.empty() && p.page_size > 0)
          params.emplace_back(p.size_param, std::to_string(p.page_size));
        break;
      case PageStyle::Offset:
        params.emplace_back(p.offset_param, std::to_string(offset_));
        params.emplace_back(p.limit_param, std::to_string(p.page_size));
        break;
      case PageStyle::Cursor:
        if (!p.size_param.empty() && p.page_size > 0)
          params.emplace_back(p.size_param, std::to_string(p.page_size));
        if (!last_token_.empty()) params.emplace_back(p.cursor_param, last_token_);
        break;
      default:
        break;
    }
    return rest::append_query(s_->url, params);
  }

  void stop_at_max(const Page& page) {
    diagnostics_->warn(
        fmt::format("{}: stopped after max_pages ({}) with more pages announced "
                    "by page {}; the rest is not loaded",
                    s_->where, s_->pagination.max_pages, page.number));
  }

  // Sets next_url_ (or leaves it empty to stop) after `page`.
  void plan_next(const Page& page, const std::string& url) {
    const Pagination& p = s_->pagination;
    const size_t n = page.size();
    std::optional<std::string> next;
    switch (p.style) {
      case PageStyle::None:
        return;
      case PageStyle::PageNumber:
        if (n == 0 ||
            (p.stop_on_short_page && p.page_size > 0 && static_cast<int64_t>(n) < p.page_size))
          return;
        ++page_value_;
        next = first_url();
        break;
      case PageStyle::Offset:
        if (n == 0 || (p.stop_on_short_page && static_cast<int64_t>(n) < p.page_size)) return;
        offset_ += static_cast<int64_t>(n);
        next = first_url();
        break;
      case PageStyle::Cursor: {
        if (n == 0) return;
        const Json* token = rest::value_at(*page.body, rest::split_path(p.cursor_path));
        if (token == nullptr || token->is_null() ||
            (token->is_string() && token->get<std::string>().empty()) ||
            (token->is_boolean() && !token->get<bool>())) {
          return;
        }
        std::string t = token->is_string() ? token->get<std::string>() : token->dump();
        if (t == last_token_) {
          throw Error(ErrorCode::InputMalformed,
                      fmt::format("{}: page {} (GET {}) returned the same cursor '{}' as the page "
                                  "before; following it would loop forever",
                                  s_->where, page.number, page.url, redact(t)),
                      "check `pagination.cursor_path` and `cursor_param`");
        }
        last_token_ = t;
        next = first_url();
        break;
      }
      case PageStyle::NextUrl: {
        if (n == 0) return;
        const Json* link = rest::value_at(*page.body, rest::split_path(p.next_url_path));
        if (link == nullptr || !link->is_string() || link->get<std::string>().empty()) return;
        next = rest::resolve_url(url, link->get<std::string>());
        break;
      }
      case PageStyle::LinkHeader: {
        if (n == 0) return;
        for (const auto& h : page.response.headers_named("link")) {
          if (auto target = rest::link_next(h)) {
            next = rest::resolve_url(url, *target);
            break;
          }
        }
        if (!next) return;
        break;
      }
    }
    if (!next) return;
    if (p.style == PageStyle::NextUrl || p.style == PageStyle::LinkHeader) {
      seen_urls_.insert(url);
      if (seen_urls_.count(with_auth(*s_, *next))) {
        throw Error(ErrorCode::InputMalformed,
                    fmt::format("{}: page {} (GET {}) links to a page already read ({}); "
                                "following it would loop forever",
                                s_->where, page.number, page.url, display_url(*s_, *next)),
                    "check the API's pagination (`pagination.type`, `next_url_path`)");
      }
    }
    if (p.max_pages > 0 && page.number >= p.max_pages) {
      stop_at_max(page);
      return;
    }
    next_url_ = std::move(next);
  }
};

// Largest cursor value among the records read; shared by the reader and the source.
struct CursorTracker {
  std::vector<std::string> path;  // empty: not tracking
  std::optional<Json> max;
  int64_t missing = 0;
  void observe(const Json& record) {
    if (path.empty()) return;
    const Json* v = rest::value_at(record, path);
    if (v == nullptr || v->is_null()) {
      ++missing;
      return;
    }
    if (!max || rest::cursor_less(*max, *v)) max = *v;
  }
};

class RestBatchReader : public BatchReader {
 public:
  RestBatchReader(rest::Layout layout, std::unique_ptr<Pager> pager, std::vector<Page> cached,
                  std::shared_ptr<CursorTracker> cursor, size_t batch_rows, std::string where,
                  Diagnostics* diagnostics, bool warn_unknown)
      : warn_unknown_(warn_unknown && layout.list_path.empty()),
        layout_(std::move(layout)),
        pager_(std::move(pager)),
        cached_(std::move(cached)),
        cursor_(std::move(cursor)),
        batch_rows_(batch_rows == 0 ? 8192 : batch_rows),
        where_(std::move(where)),
        diagnostics_(diagnostics) {
    for (const auto& s : layout_.sources)
      if (!s.path.empty()) known_.insert(s.path.front());
    rest::index_layout(layout_);
  }

  const Schema& schema() const override { return layout_.schema; }

  std::optional<RecordBatch> next() override {
    RecordBatch batch(layout_.schema.columns.size());
    while (batch.num_rows() < batch_rows_) {
      if (!page_ || index_ >= page_->size()) {
        page_.reset();
        if (cached_pos_ < cached_.size()) {
          page_ = std::move(cached_[cached_pos_++]);
        } else if (auto p = pager_->next()) {
          page_ = std::move(p);
        } else {
          break;
        }
        index_ = 0;
        continue;
      }
      const Json& record = (*page_->records)[index_];
      if (!record.is_object()) {
        throw Error(ErrorCode::InputMalformed,
                    fmt::format("{}: page {} (GET {}): record {} is {}, expected an object", where_,
                                page_->number, page_->url, index_ + 1, record.type_name()),
                    "check `records_path`; nothing was loaded and the state is unchanged");
      }
      if (warn_unknown_) warn_unknown(record);
      try {
        rest::append_rows(layout_, record, batch, "", scratch_);
      } catch (const Error& e) {
        throw Error(e.code(),
                    redact(fmt::format("{}: page {} (GET {}) record {}: {}", where_, page_->number,
                                       page_->url, index_ + 1, e.what())),
                    e.hint());
      }
      cursor_->observe(record);
      ++index_;
    }
    if (batch.num_rows() == 0) return std::nullopt;
    return batch;
  }

 private:
  bool warn_unknown_;
  rest::Layout layout_;
  std::unique_ptr<Pager> pager_;
  std::vector<Page> cached_;
  size_t cached_pos_ = 0;
  std::shared_ptr<CursorTracker> cursor_;
  size_t batch_rows_;
  std::string where_;
  Diagnostics* diagnostics_;
  std::optional<Page> page_;
  size_t index_ = 0;
  std::string scratch_;
  std::set<std::string> known_;
  std::set<std::string> warned_;

  // A field that appears after inference is not loaded: say so once per field.
  void warn_unknown(const Json& record) {
    for (const auto& [key, value] : record.items()) {
      if (known_.count(key) || warned_.count(key)) continue;
      warned_.insert(key);
      if (diagnostics_ == nullptr) continue;
      diagnostics_->warn(fmt::format(
          "{}: field '{}' first seen on page {} is not a column (columns were inferred from the "
          "first pages); it is not loaded: declare it under `columns` or raise `infer_pages`",
          where_, key, page_->number));
    }
  }
};

class RestSource : public Source {
 public:
  explicit RestSource(const SourceContext& ctx)
      : where_(fmt::format("stream '{}': rest source", ctx.stream)),
        diagnostics_(ctx.diagnostics ? ctx.diagnostics : &own_diagnostics_),
        options_(ctx.options.is_object() ? ctx.options : nlohmann::json::object()) {
    ConnectorOptions o(options_, where_);
    const ResolvedConnection* conn = ctx.connection;
    // URL
    auto opt_base = o.string("base_url");
    std::optional<std::string> conn_base = conn ? conn->get("base_url") : std::nullopt;
    base_url_ = opt_base ? *opt_base : conn_base.value_or("");
    path_ = o.string("path").value_or("");
    if (base_url_.empty()) {
      throw Error(
          ErrorCode::ConfigMissingKey,
          fmt::format("{} needs a URL: set `base_url` on the connection or the stream", where_),
          "e.g. base_url: https://api.example.com/v1 and path: /orders");
    }
    if (base_url_.rfind("http://", 0) != 0 && base_url_.rfind("https://", 0) != 0) {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: base_url '{}' must start with http:// or https://", where_,
                              redact(base_url_)));
    }
    for (const char* key : {"query", "headers"}) {
      auto it = options_.find(key);
      if (it == options_.end() || it->is_null()) continue;
      if (!it->is_object())
        throw Error(ErrorCode::ConfigWrongType,
                    fmt::format("{} option `{}` must be a map", where_, key));
      for (const auto& [k, v] : it->items()) {
        std::string text = v.is_string() ? v.get<std::string>() : v.dump();
        (std::string(key) == "query" ? query_ : headers_).emplace_back(k, text);
      }
    }
    records_path_ = o.string("records_path").value_or("");
    read_pagination(o);
    read_layout(o);
    read_incremental(o);
    read_http(conn);
    read_auth(conn);
  }

  Window plan_window(const nlohmann::json& position) override {
    position_ = position;
    window_empty_ = false;
    cached_.clear();
    pager_.reset();
    layout_.reset();
    Window w;
    if (!cursor_mode_) {
      w.description =
          fmt::format("all records of GET {}", display_url(*settings(), settings()->url));
      check_first_page(w);
      return w;
    }
    if (position.is_object() && position.contains("cursor")) {
      w.low = position["cursor"];
    } else if (!position.is_null() && !position.is_object()) {
      throw Error(
          ErrorCode::StateStoreFailed,
          fmt::format("{}: the stored position {} has no `cursor` value", where_, position.dump()),
          "fix it with `dpone state set` or start over with `dpone state reset`");
    }
    if (w.low.is_null()) {
      w.description =
          initial_cursor_.is_null()
              ? fmt::format(
                    "first run: every record ({} parameters without a cursor "
                    "are left out); new cursor = max({})",
                    "{{ state.cursor }}", cursor_field_)
              : fmt::format("first run: {} > {} (initial_cursor); new cursor = max({})",
                            cursor_field_, rest::cursor_text(initial_cursor_), cursor_field_);
    } else {
      w.description = fmt::format(
          "{} > {} (the stored cursor, sent as {{{{ state.cursor }}}}); "
          "new cursor = max({}) of the records read",
          cursor_field_, rest::cursor_text(w.low), cursor_field_);
    }
    check_first_page(w);
    return w;
  }

  // The first page is fetched now (and kept for discover and extract): when it holds no
  // records the window is empty and the run loads nothing, keeping the state.
  void check_first_page(Window& w) {
    if (!infer_ && !cursor_mode_) return;  // nothing to learn before the load
    Pager& pager = ensure_pager();
    if (cached_.empty()) {
      auto page = pager.next();
      if (page) cached_.push_back(std::move(*page));
    }
    if (cached_.empty() || cached_.front().size() == 0) {
      window_empty_ = true;
      w.empty = true;
      w.estimated_rows = 0;
      w.description += " (the first page holds no records: nothing to load)";
    }
  }

  Schema discover() override {
    if (layout_) return layout_->schema;
    std::vector<const Json*> sample;
    if (infer_ || !declared_complete()) {
      Pager& pager = ensure_pager();
      while (static_cast<int64_t>(cached_.size()) < infer_pages_) {
        auto page = pager.next();
        if (!page) break;
        cached_.push_back(std::move(*page));
      }
      for (const auto& p : cached_) {
        if (!p.records) continue;
        for (const auto& r : *p.records)
          if (r.is_object()) sample.push_back(&r);
      }
    }
    // Columns of earlier runs (kept in the position) stay columns when the sampled pages
    // lack them, so an optional field or an empty page never looks like a dropped column.
    rest::LayoutOptions options = layout_options_;
    std::vector<Column> stored = stored_columns();
    for (const auto& c : stored) {
      bool declared = std::any_of(options.declared.begin(), options.declared.end(),
                                  [&](const auto& d) { return d.first == c.name; });
      if (!declared) options.declared.emplace_back(c.name, c.type);
    }
    if (sample.empty() && !stored.empty()) {
      layout_ = layout_from(stored);
    } else if (sample.empty() && window_empty_ && infer_) {
      // Nothing to load and nothing known yet (a first run on an empty API): the declared
      // columns, possibly none; the run loads 0 rows and creates nothing.
      std::vector<Column> declared;
      for (const auto& [name, type] : layout_options_.declared)
        declared.push_back(Column{name, type, true});
      layout_ = layout_from(declared);
      return layout_->schema;
    } else {
      layout_ = rest::infer_layout(sample, options, where_);
    }
    if (layout_->schema.columns.empty()) {
      throw Error(ErrorCode::SourceReadFailed,
                  fmt::format("{}: no columns: the first page{} held no records to infer them from",
                              where_, infer_pages_ > 1 ? "s" : ""),
                  "declare the columns under `columns` (with infer: false), or run again when "
                  "the API returns records");
    }
    if (infer_ && !sample.empty()) {
      std::string cols;
      for (const auto& c : layout_->schema.columns)
        cols += (cols.empty() ? "" : ", ") + c.name + " " + c.type.to_string();
      diagnostics_->warn(fmt::format("columns inferred from {} record{} of the first {} page{}: {}",
                                     sample.size(), sample.size() == 1 ? "" : "s", cached_.size(),
                                     cached_.size() == 1 ? "" : "s", cols));
    }
    return layout_->schema;
  }

  std::vector<ArtifactSpec> produces() const override {
    return {ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch}};
  }

  Artifact extract(const Window&, const ArtifactSpec& spec, const ExtractOptions& eo) override {
    if (spec.kind != ArtifactKind::StreamingRows || spec.format != WireFormat::RecordBatch) {
      throw Error(ErrorCode::Internal,
                  fmt::format("{}: cannot produce {}", where_, spec.to_string()));
    }
    discover();
    ensure_pager();
    cursor_ = std::make_shared<CursorTracker>();
    if (cursor_mode_) cursor_->path = rest::split_path(cursor_field_);
    StreamingRows rows;
    rows.format = WireFormat::RecordBatch;
    rows.batches =
        std::make_unique<RestBatchReader>(*layout_, std::move(pager_), std::move(cached_), cursor_,
                                          eo.batch_rows, where_, diagnostics_, infer_);
    cached_.clear();
    return rows;
  }

  nlohmann::json next_position(const Window& window) override {
    nlohmann::json out = nlohmann::json::object();
    if (layout_) {
      out["columns"] = nlohmann::json::array();
      for (const auto& c : layout_->schema.columns)
        out["columns"].push_back({c.name, c.type.to_string(), c.nullable});
    }
    if (!cursor_mode_) return out;
    if (!cursor_ || !cursor_->max) {
      if (position_.is_object() && position_.contains("cursor"))
        out["cursor"] = position_["cursor"];
      return out;
    }
    if (cursor_->missing > 0) {
      diagnostics_->warn(
          fmt::format("{}: {} record{} had no `{}` value and did not move the cursor", where_,
                      cursor_->missing, cursor_->missing == 1 ? "" : "s", cursor_field_));
    }
    nlohmann::json max = nlohmann::json::parse(cursor_->max->dump());
    if (!window.low.is_null()) {
      Json low = Json::parse(window.low.dump());
      if (!rest::cursor_less(low, *cursor_->max)) max = window.low;  // never move backwards
    }
    out["cursor"] = max;
    return out;
  }

 private:
  std::string where_;
  Diagnostics own_diagnostics_;
  Diagnostics* diagnostics_;
  nlohmann::json options_;
  std::string base_url_, path_, records_path_;
  std::vector<std::pair<std::string, std::string>> query_, headers_;
  std::vector<std::string> auth_headers_;
  std::string api_key_param_, api_key_;
  Pagination pagination_;
  rest::LayoutOptions layout_options_;
  bool infer_ = true;
  int64_t infer_pages_ = 1;
  bool cursor_mode_ = false;
  std::string cursor_field_;
  nlohmann::json initial_cursor_;
  rest::HttpOptions http_options_;
  nlohmann::json position_;
  bool window_empty_ = false;

  std::shared_ptr<rest::HttpClient> http_;
  std::unique_ptr<Pager> pager_;
  std::vector<Page> cached_;
  std::optional<rest::Layout> layout_;
  std::shared_ptr<CursorTracker> cursor_;

  // ------------------------------------------------------------------ option readers

  nlohmann::json get(const nlohmann::json& map, const char* key) const {
    auto it = map.find(key);
    return it == map.end() ? nlohmann::json() : *it;
  }
  int64_t integer(const nlohmann::json& map, const char* key, int64_t fallback,
                  const std::string& prefix = "") {
    auto v = get(map, key);
    if (v.is_null()) return fallback;
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      throw Error(ErrorCode::ConfigWrongType,
                  fmt::format("{} option `{}{}` must be a non-negative integer, got {}", where_,
                              prefix, key, v.dump()));
    return v.get<int64_t>();
  }
  double number(const char* key, double fallback) {
    auto v = get(options_, key);
    if (v.is_null()) return fallback;
    if (!v.is_number() || v.get<double>() < 0)
      throw Error(ErrorCode::ConfigWrongType,
                  fmt::format("{} option `{}` must be a non-negative number, got {}", where_, key,
                              v.dump()));
    return v.get<double>();
  }
  std::string text(const nlohmann::json& map, const char* key, std::string fallback) {
    auto v = get(map, key);
    if (v.is_null()) return fallback;
    if (!v.is_string())
      throw Error(ErrorCode::ConfigWrongType,
                  fmt::format("{} option `{}` must be a string, got {}", where_, key, v.dump()));
    return v.get<std::string>();
  }

  void read_pagination(const ConnectorOptions&) {
    auto p = get(options_, "pagination");
    if (p.is_null()) return;
    if (p.is_string()) p = nlohmann::json{{"type", p}};
    if (!p.is_object())
      throw Error(ErrorCode::ConfigWrongType,
                  fmt::format("{} option `pagination` must be a map", where_));
    std::string type = text(p, "type", "none");
    static const std::map<std::string, PageStyle> kStyles = {
        {"none", PageStyle::None},        {"page_number", PageStyle::PageNumber},
        {"offset", PageStyle::Offset},    {"cursor", PageStyle::Cursor},
        {"next_url", PageStyle::NextUrl}, {"link_header", PageStyle::LinkHeader}};
    auto it = kStyles.find(type);
    if (it == kStyles.end())
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: pagination.type '{}' is not one of: none, page_number, offset, "
                              "cursor, next_url, link_header",
                              where_, type));
    Pagination& g = pagination_;
    g.style = it->second;
    g.page_param = text(p, "page_param", g.page_param);
    g.start_page = integer(p, "start_page", g.start_page, "pagination.");
    g.size_param = text(p, "size_param", g.style == PageStyle::Offset ? "" : g.size_param);
    g.page_size = integer(p, "page_size", g.style == PageStyle::Offset ? 100 : 0, "pagination.");
    g.offset_param = text(p, "offset_param", g.offset_param);
    g.limit_param = text(p, "limit_param", g.limit_param);
    g.cursor_param = text(p, "cursor_param", g.cursor_param);
    g.cursor_path = text(p, "cursor_path", "");
    g.next_url_path = text(p, "next_url_path", g.next_url_path);
    g.max_pages = integer(p, "max_pages", 0, "pagination.");
    auto short_page = get(p, "stop_on_short_page");
    if (short_page.is_boolean()) g.stop_on_short_page = short_page.get<bool>();
    if (g.style == PageStyle::Cursor && g.cursor_path.empty())
      throw Error(ErrorCode::ConfigMissingKey,
                  fmt::format("{}: pagination.type cursor needs `cursor_path` (where the next "
                              "page's token is in the body, e.g. meta.next_cursor)",
                              where_));
    if (g.style == PageStyle::Offset && g.page_size <= 0)
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: pagination.type offset needs a positive `page_size`", where_));
  }

  void read_layout(const ConnectorOptions& o) {
    auto cols = get(options_, "columns");
    if (cols.is_object()) {
      for (const auto& [name, t] : cols.items()) {
        auto type = t.is_string() ? LogicalType::parse(t.get<std::string>()) : std::nullopt;
        if (!type)
          throw Error(ErrorCode::ConfigBadValue,
                      fmt::format("{}: columns.{}: {} is not a type", where_, name, t.dump()));
        layout_options_.declared.emplace_back(name, *type);
      }
    }
    auto infer = get(options_, "infer");
    if (infer.is_boolean()) infer_ = infer.get<bool>();
    if (!infer_ && layout_options_.declared.empty())
      throw Error(
          ErrorCode::ConfigMissingKey,
          fmt::format("{}: infer: false needs the columns declared under `columns`", where_));
    layout_options_.infer = infer_;
    infer_pages_ = std::max<int64_t>(1, integer(options_, "infer_pages", 1));
    layout_options_.primary_key = o.string_list("primary_key");
    std::string normalize = text(options_, "normalize", "json");
    if (normalize == "child_tables") {
      layout_options_.normalize = rest::Normalize::ChildTables;
    } else if (normalize != "json") {
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("{}: normalize '{}' is not one of: json, child_tables", where_, normalize));
    }
    layout_options_.child_table = text(options_, "child_table", "");
    if (!layout_options_.child_table.empty() &&
        layout_options_.normalize != rest::Normalize::ChildTables)
      throw Error(ErrorCode::ConfigInvalid,
                  fmt::format("{}: child_table needs normalize: child_tables", where_));
  }

  bool declared_complete() const { return !infer_; }

  // The columns the previous run loaded, from the position (empty when none).
  std::vector<Column> stored_columns() const {
    std::vector<Column> out;
    if (!position_.is_object() || !position_.contains("columns") ||
        !position_["columns"].is_array())
      return out;
    for (const auto& c : position_["columns"]) {
      if (!c.is_array() || c.size() != 3 || !c[0].is_string() || !c[1].is_string()) continue;
      auto type = LogicalType::parse(c[1].get<std::string>());
      if (!type) continue;
      out.push_back(
          Column{c[0].get<std::string>(), *type, c[2].is_boolean() ? c[2].get<bool>() : true});
    }
    return out;
  }

  // A layout from known columns alone (no sample): used for windows that load nothing.
  rest::Layout layout_from(const std::vector<Column>& columns) const {
    rest::Layout layout;
    for (const auto& c : columns) {
      Column col = c;
      for (const auto& [name, type] : layout_options_.declared)
        if (name == c.name) col.type = type;
      layout.schema.columns.push_back(col);
      layout.sources.push_back({rest::ColumnSource::Kind::Field, {c.name}});
    }
    if (layout_options_.child_table.empty()) {
      layout.schema.primary_key = layout_options_.primary_key;
    } else {
      for (const auto& k : layout_options_.primary_key)
        layout.schema.primary_key.push_back("_parent_" + k);
      layout.schema.primary_key.push_back("_index");
      layout.list_path = {layout_options_.child_table};
    }
    return layout;
  }

  void read_incremental(const ConnectorOptions& o) {
    cursor_field_ = o.string("cursor_field").value_or("");
    std::string mode = o.string("incremental").value_or(cursor_field_.empty() ? "full" : "cursor");
    if (mode != "full" && mode != "cursor")
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("{} option `incremental` is '{}'; the rest source supports full and cursor",
                      where_, mode));
    cursor_mode_ = mode == "cursor";
    if (cursor_mode_ && cursor_field_.empty())
      throw Error(
          ErrorCode::ConfigMissingKey,
          fmt::format("{}: incremental: cursor needs `cursor_field` (the record field whose "
                      "largest value becomes the next run's {{{{ state.cursor }}}})",
                      where_));
    initial_cursor_ = get(options_, "initial_cursor");
    bool uses_template = false;
    static const std::regex kState("\\{\\{\\s*state\\.([A-Za-z_][A-Za-z0-9_]*)\\s*\\}\\}");
    auto check = [&](const std::string& value, const std::string& at) {
      for (auto it = std::sregex_iterator(value.begin(), value.end(), kState);
           it != std::sregex_iterator(); ++it) {
        uses_template = true;
        if ((*it)[1] != "cursor")
          throw Error(ErrorCode::ConfigTemplate,
                      fmt::format("{}: {}: unknown state variable 'state.{}'; the rest source "
                                  "fills {{{{ state.cursor }}}} only",
                                  where_, at, (*it)[1].str()));
      }
    };
    check(path_, "path");
    for (const auto& [k, v] : query_) check(v, "query." + k);
    for (const auto& [k, v] : headers_) check(v, "headers." + k);
    if (uses_template && !cursor_mode_)
      throw Error(ErrorCode::ConfigInvalid,
                  fmt::format("{}: {{{{ state.cursor }}}} is used but incremental is full", where_),
                  "set `incremental: cursor` and `cursor_field`");
  }

  // A timeout comes from the stream option, else the connection field, else the default;
  // `from` records which, for TIMED_OUT messages.
  double timeout_setting(const ResolvedConnection* conn, const char* option, const char* field,
                         double fallback, std::string& from) {
    if (!get(options_, option).is_null()) {
      from = fmt::format("stream option `{}`", option);
      return number(option, fallback);
    }
    if (conn && conn->get(field)) {
      from = connection_field(field);
      return connection_timeout(*conn, field, fallback, where_);
    }
    from = fmt::format("the default of connection field `{}`", field);
    return fallback;
  }

  void read_http(const ResolvedConnection* conn) {
    http_options_.timeout_s =
        timeout_setting(conn, "timeout_s", "request_timeout", 30, http_options_.timeout_from);
    http_options_.connect_timeout_s =
        std::min(timeout_setting(conn, "connect_timeout_s", "connect_timeout", 10,
                                 http_options_.connect_timeout_from),
                 http_options_.timeout_s);
    http_options_.rate_limit = number("rate_limit", 0);
    http_options_.retry.retries = static_cast<int>(integer(options_, "retries", 5));
    http_options_.retry.backoff_initial_s = number("backoff_initial_s", 0.5);
    http_options_.retry.backoff_max_s = number("backoff_max_s", 30);
    http_options_.retry.retry_after_max_s = number("retry_after_max_s", 300);
    auto verify = get(options_, "verify_tls");
    if (verify.is_boolean()) http_options_.verify_tls = verify.get<bool>();
    if (!http_options_.verify_tls)
      diagnostics_->warn(
          fmt::format("{}: verify_tls is false: the server's certificate is not checked", where_));
  }

  void read_auth(const ResolvedConnection* conn) {
    if (conn == nullptr) return;
    auto secret = [&](const char* f) -> std::string {
      const Secret* s = conn->secret(f);
      return s ? s->reveal() : std::string();
    };
    std::string token = secret("token"), password = secret("password"), key = secret("api_key");
    std::string username = conn->get("username").value_or("");
    std::string auth = conn->get("auth").value_or(!token.empty()      ? "bearer"
                                                  : !key.empty()      ? "api_key"
                                                  : !username.empty() ? "basic"
                                                                      : "none");
    auto need = [&](bool ok, const char* field) {
      if (!ok)
        throw Error(ErrorCode::ConfigMissingKey,
                    fmt::format("{}: connection '{}' has auth: {} but no `{}`", where_, conn->id,
                                auth, field),
                    fmt::format("set it in connections.yaml (e.g. {}: ${{env:API_SECRET}}) or as "
                                "DPONE_CONN_<ID>_{}",
                                field, field));
    };
    if (auth == "bearer") {
      need(!token.empty(), "token");
      auth_headers_.push_back("Authorization: Bearer " + token);
    } else if (auth == "basic") {
      need(!username.empty(), "username");
      std::string encoded = base64(username + ":" + password);
      Redactor::global().add(encoded);
      auth_headers_.push_back("Authorization: Basic " + encoded);
    } else if (auth == "api_key") {
      need(!key.empty(), "api_key");
      std::string name = conn->get("api_key_name").value_or("");
      std::string in = conn->get("api_key_in").value_or("header");
      if (in == "query") {
        api_key_param_ = name.empty() ? "api_key" : name;
        api_key_ = key;
        Redactor::global().add(rest::url_encode(key));
      } else if (in == "header") {
        auth_headers_.push_back((name.empty() ? "X-API-Key" : name) + ": " + key);
      } else {
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: connection '{}': api_key_in '{}' is not one of: header, query",
                                where_, conn->id, in));
      }
    } else if (auth != "none") {
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("{}: connection '{}': auth '{}' is not one of: none, bearer, basic, api_key",
                      where_, conn->id, auth));
    }
  }

  // ---------------------------------------------------------------------- settings

  // `text` with {{ state.cursor }} filled; nullopt when there is no cursor to fill.
  std::optional<std::string> fill(const std::string& value) const {
    static const std::regex kState("\\{\\{\\s*state\\.cursor\\s*\\}\\}");
    if (!std::regex_search(value, kState)) return value;
    nlohmann::json cursor = position_.is_object() && position_.contains("cursor")
                                ? position_["cursor"]
                                : initial_cursor_;
    if (cursor.is_null()) return std::nullopt;
    return std::regex_replace(value, kState, rest::cursor_text(cursor));
  }

  std::shared_ptr<const Settings> settings() const {
    auto s = std::make_shared<Settings>();
    s->where = where_;
    auto path = fill(path_);
    if (!path)
      throw Error(ErrorCode::ConfigMissingKey,
                  fmt::format("{}: the path uses {{{{ state.cursor }}}} but there is no stored "
                              "cursor yet",
                              where_),
                  "set `initial_cursor` for the first run");
    std::string url = base_url_;
    if (!path->empty()) {
      if (url.back() == '/' && path->front() == '/') url.pop_back();
      if (url.back() != '/' && path->front() != '/' && path->front() != '?') url += '/';
      url += *path;
    }
    s->url = url;
    for (const auto& [k, v] : query_)
      if (auto f = fill(v)) s->query.emplace_back(k, *f);  // no cursor yet: parameter left out
    for (const auto& [k, v] : headers_)
      if (auto f = fill(v)) s->headers.push_back(k + ": " + *f);
    s->headers.push_back("Accept: application/json");
    for (const auto& h : auth_headers_) s->headers.push_back(h);
    s->api_key_param = api_key_param_;
    s->api_key = api_key_;
    s->records_path = records_path_;
    s->pagination = pagination_;
    return s;
  }

  Pager& ensure_pager() {
    if (!http_) http_ = std::make_shared<rest::HttpClient>(http_options_);
    if (!pager_) pager_ = std::make_unique<Pager>(settings(), http_, diagnostics_);
    return *pager_;
  }
};

}  // namespace

std::unique_ptr<Source> make_rest_source(const SourceContext& context) {
  return std::make_unique<RestSource>(context);
}

void register_rest_connector(ConnectorRegistry& registry) {
  ConnectorFactory factory;
  factory.name = "rest";
  factory.make_source = [](const SourceContext& context) { return make_rest_source(context); };
  registry.add(std::move(factory));
}

}  // namespace dpone
