#include "connectors/rest/tests/fixture_server.hpp"

#include <httplib.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <map>

#include <fmt/format.h>

namespace dpone::rest_fixture {

namespace {

using Json = nlohmann::ordered_json;

int int_param(const httplib::Request& req, const char* name, int fallback) {
  if (!req.has_param(name)) return fallback;
  try {
    return std::stoi(req.get_param_value(name));
  } catch (const std::exception&) {
    return fallback;
  }
}

std::string iso_now() {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t t = system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

// Records first..last (inclusive) of record(i) as an array.
Json range(int first, int last) {
  Json out = Json::array();
  for (int i = first; i <= last; ++i) out.push_back(record(i));
  return out;
}

void send(httplib::Response& res, const Json& body) {
  res.set_content(body.dump(), "application/json");
}

}  // namespace

Json record(int i) {
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 0;
  tm.tm_mday = 1;
  std::time_t t = timegm(&tm) + static_cast<std::time_t>(i) * 60;
  gmtime_r(&t, &tm);
  return Json{
      {"id", i},
      {"name", fmt::format("item-{}", i)},
      {"score", i * 1.5},
      {"active", i % 2 == 0},
      {"updated_at", fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900,
                                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)}};
}

Json nested_orders() {
  return Json::parse(R"([
    {"id": 1, "customer": {"name": "Ann", "address": {"city": "Oslo", "zip": "0150"}},
     "lines": [{"sku": "A-1", "qty": 2, "price": 9.5}, {"sku": "B-2", "qty": 1, "price": 20.0}],
     "tags": ["new", "gift"], "meta": {"source": "web"}},
    {"id": 2, "customer": {"name": "Bo", "address": {"city": "Bergen", "zip": "5003"}},
     "lines": [], "tags": ["vip"], "meta": {"source": "app"}},
    {"id": 3, "customer": {"name": "Cy", "address": null},
     "tags": [], "meta": {"source": "web"}},
    {"id": 4, "customer": {"name": "Di", "address": {"city": "Tromsø", "zip": "9008"}},
     "lines": [{"sku": "C-3", "qty": 5, "price": 1.25}], "meta": {"source": "phone"}}
  ])");
}

struct FixtureServer::Impl {
  httplib::Server server;
  std::thread thread;
  mutable std::mutex mutex;
  std::vector<LogEntry> log;
  std::map<std::string, int> hits;  // "endpoint:page" -> requests so far
  int incremental_total = 25;
  std::ofstream log_file;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::string base;

  // Requests so far of this endpoint+page, this one included.
  int hit(const std::string& key) {
    std::lock_guard lock(mutex);
    return ++hits[key];
  }

  void routes() {
    auto& s = server;
    s.Get("/page", [](const httplib::Request& req, httplib::Response& res) {
      int page = int_param(req, "page", 1), per = int_param(req, "per_page", 10);
      int first = (page - 1) * per + 1, last = std::min(25, page * per);
      send(res, Json{{"data", range(first, last)}, {"page", page}});
    });
    s.Get("/offset", [](const httplib::Request& req, httplib::Response& res) {
      int offset = int_param(req, "offset", 0), limit = int_param(req, "limit", 10);
      send(res, Json{{"results", range(offset + 1, std::min(25, offset + limit))}});
    });
    s.Get("/cursor", [](const httplib::Request& req, httplib::Response& res) {
      int start = 1;
      if (req.has_param("cursor")) {
        std::string c = req.get_param_value("cursor");
        if (c.rfind("tok-", 0) != 0) {
          res.status = 400;
          send(res, Json{{"error", "bad cursor"}});
          return;
        }
        start = std::stoi(c.substr(4));
      }
      int limit = int_param(req, "limit", 7);
      int last = std::min(25, start + limit - 1);
      Json next = last < 25 ? Json(fmt::format("tok-{}", last + 1)) : Json(nullptr);
      send(res, Json{{"items", range(start, last)}, {"meta", {{"next_cursor", next}}}});
    });
    s.Get("/next", [](const httplib::Request& req, httplib::Response& res) {
      int start = int_param(req, "start", 1);
      int last = std::min(25, start + 9);
      Json next = last < 25 ? Json(fmt::format("/next?start={}", last + 1)) : Json(nullptr);
      send(res, Json{{"records", range(start, last)}, {"links", {{"next", next}}}});
    });
    s.Get("/link", [this](const httplib::Request& req, httplib::Response& res) {
      int page = int_param(req, "page", 1);
      int first = (page - 1) * 10 + 1, last = std::min(25, page * 10);
      std::string link = fmt::format("<{}/link?page=3>; rel=\"last\"", base);
      if (last < 25) link = fmt::format("<{}/link?page={}>; rel=\"next\", ", base, page + 1) + link;
      res.set_header("Link", link);
      send(res, range(first, last));
    });
    s.Get("/flaky", [this](const httplib::Request& req, httplib::Response& res) {
      int page = int_param(req, "page", 1);
      int n = hit(fmt::format("flaky:{}", page));
      if (page == 2 && n == 1) {
        res.status = 429;
        res.set_header("Retry-After", "1");
        send(res, Json{{"error", "slow down"}});
        return;
      }
      if (page == 3 && n <= 2) {
        res.status = 500;
        send(res, Json{{"error", "internal"}});
        return;
      }
      int first = (page - 1) * 10 + 1, last = std::min(25, page * 10);
      send(res, Json{{"data", range(first, last)}});
    });
    s.Get("/broken", [](const httplib::Request& req, httplib::Response& res) {
      int page = int_param(req, "page", 1);
      if (page == 2) {
        res.status = 503;
        send(res, Json{{"error", "maintenance"}});
        return;
      }
      send(res, Json{{"data", range((page - 1) * 10 + 1, std::min(25, page * 10))}});
    });
    s.Get("/slow", [this](const httplib::Request& req, httplib::Response& res) {
      int page = int_param(req, "page", 1);
      int n = hit(fmt::format("slow:{}", page));
      if (page == 1 && (n == 1 || req.has_param("always")))
        std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      send(res, Json{{"data", range((page - 1) * 10 + 1, std::min(25, page * 10))}});
    });
    s.Get("/malformed", [](const httplib::Request& req, httplib::Response& res) {
      int page = int_param(req, "page", 1);
      if (page == 2) {
        res.set_content(R"({"data": [{"id": 11, "name": "item-11"}, {"id": 12, "na)",
                        "application/json");
        return;
      }
      send(res, Json{{"data", range((page - 1) * 10 + 1, std::min(25, page * 10))}});
    });
    s.Get("/incremental", [this](const httplib::Request& req, httplib::Response& res) {
      int total;
      {
        std::lock_guard lock(mutex);
        total = incremental_total;
      }
      std::string since =
          req.has_param("updated_since") ? req.get_param_value("updated_since") : "";
      Json all = Json::array();
      for (int i = 1; i <= total; ++i) {
        Json r = record(i);
        if (since.empty() || r["updated_at"].get<std::string>() > since)
          all.push_back(std::move(r));
      }
      int page = int_param(req, "page", 1);
      Json data = Json::array();
      for (size_t i = static_cast<size_t>((page - 1) * 10);
           i < all.size() && i < static_cast<size_t>(page * 10); ++i)
        data.push_back(all[i]);
      send(res, Json{{"data", data}});
    });
    s.Get("/drift", [](const httplib::Request& req, httplib::Response& res) {
      int page = int_param(req, "page", 1);
      const char* pages[] = {
          R"({"data": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]})",
          R"({"data": [{"id": 3, "name": "c", "extra": true}]})",
          R"({"data": [{"id": 4, "name": "d"}, {"id": "five", "name": "e"}]})",
      };
      res.set_content(page >= 1 && page <= 3 ? pages[page - 1] : R"({"data": []})",
                      "application/json");
    });
    s.Get("/nested", [](const httplib::Request&, httplib::Response& res) {
      send(res, Json{{"orders", nested_orders()}});
    });
    s.Get("/big", [](const httplib::Request& req, httplib::Response& res) {
      int page = int_param(req, "page", 1), per = int_param(req, "per_page", 100);
      int first = (page - 1) * per + 1, last = std::min(kBigTotal, page * per);
      // With a charset parameter httplib does not compress: brotli would cost the server
      // ~10 ms a page and hide the client's own throughput. (Other endpoints compress, so
      // the client's decoding is exercised.)
      res.set_content(Json{{"data", range(first, last)}}.dump(), "application/json; charset=utf-8");
    });
    s.Get("/auth/bearer", [](const httplib::Request& req, httplib::Response& res) {
      if (req.get_header_value("Authorization") != std::string("Bearer ") + kToken) {
        res.status = 401;
        send(res, Json{{"error", "unauthorized"}});
        return;
      }
      send(res, range(1, 5));
    });
    s.Get("/auth/basic", [](const httplib::Request& req, httplib::Response& res) {
      // base64("ann:p@ss w0rd")
      if (req.get_header_value("Authorization") != "Basic YW5uOnBAc3MgdzByZA==") {
        res.status = 401;
        send(res, Json{{"error", "unauthorized"}});
        return;
      }
      send(res, range(1, 5));
    });
    s.Get("/auth/key", [](const httplib::Request& req, httplib::Response& res) {
      bool ok = (req.has_param("api_key") && req.get_param_value("api_key") == kApiKey) ||
                req.get_header_value("X-API-Key") == kApiKey;
      if (!ok) {
        res.status = 401;
        send(res, Json{{"error", "unauthorized"}});
        return;
      }
      send(res, range(1, 5));
    });
    s.Get("/_control/reset", [this](const httplib::Request&, httplib::Response& res) {
      reset_state();
      res.set_content("ok\n", "text/plain");
    });
    s.Get("/_control/grow", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mutex);
      incremental_total += int_param(req, "n", 5);
      res.set_content("ok\n", "text/plain");
    });
    s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      if (req.path.rfind("/_control", 0) == 0) return;
      LogEntry e;
      e.t = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      e.wall = iso_now();
      e.method = req.method;
      e.target = req.target;
      e.status = res.status;
      std::lock_guard lock(mutex);
      if (log_file.is_open()) {
        log_file << fmt::format("t={:.3f} {} {} {} -> {}\n", e.t, e.wall, e.method, e.target,
                                e.status);
        log_file.flush();
      }
      log.push_back(std::move(e));
    });
  }

  void reset_state() {
    std::lock_guard lock(mutex);
    hits.clear();
    incremental_total = 25;
    log.clear();
  }
};

FixtureServer::FixtureServer(std::string log_file) : impl_(std::make_unique<Impl>()) {
  if (!log_file.empty()) impl_->log_file.open(log_file, std::ios::app);
  impl_->routes();
  // Without it each small response waits for a delayed ACK (~40 ms a page).
  impl_->server.set_tcp_nodelay(true);
  port_ = impl_->server.bind_to_any_port("127.0.0.1");
  if (port_ <= 0) throw std::runtime_error("fixture server: cannot bind 127.0.0.1");
  impl_->base = url();
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
}

FixtureServer::~FixtureServer() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::vector<LogEntry> FixtureServer::log() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->log;
}

std::string FixtureServer::log_text() const {
  std::string out;
  for (const auto& e : log())
    out += fmt::format("t={:.3f} {} {} {} -> {}\n", e.t, e.wall, e.method, e.target, e.status);
  return out;
}

void FixtureServer::reset() {
  impl_->reset_state();
}

void FixtureServer::grow(int n) {
  std::lock_guard lock(impl_->mutex);
  impl_->incremental_total += n;
}

}  // namespace dpone::rest_fixture
