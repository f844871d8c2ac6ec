// state list | show | history | set | reset. Changes need --yes and print the
// previous value, so an operator can always put it back.
#include <iostream>
#include <set>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "runtime/console.hpp"
#include "runtime/project.hpp"

namespace dpone::cli {

namespace {

using json = nlohmann::json;

// The state stores the manifest's streams use (usually one), each with its streams.
std::vector<std::pair<StateLocation, std::vector<std::string>>> stores_of(const Project& p) {
  std::vector<std::pair<StateLocation, std::vector<std::string>>> out;
  for (const auto& s : p.manifest->streams) {
    auto loc = state_location(s.config, p.manifest->base_dir);
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& e) { return e.first == loc; });
    if (it == out.end()) out.push_back({loc, {s.name}});
    else it->second.push_back(s.name);
  }
  return out;
}

StateLocation store_for(const Project& p, const std::string& stream) {
  for (const auto& s : p.manifest->streams)
    if (s.name == stream) return state_location(s.config, p.manifest->base_dir);
  std::string names;
  for (const auto& s : p.manifest->streams) names += (names.empty() ? "" : ", ") + s.name;
  throw Error(ErrorCode::SelectNoMatch, "no stream '" + stream + "' in the manifest", "streams: " + names);
}

StateServices services(const Project& p) {
  return StateServices{p.connections ? &*p.connections : nullptr, p.loader.get()};
}

std::string pos(const json& j) { return j.is_null() ? "null" : j.dump(); }

}  // namespace

void register_state_commands(CLI::App& app, int* exit_code) {
  static CommonOptions o;
  static std::string stream, position;
  static bool yes = false;
  auto* state = app.add_subcommand("state", "Inspect and change stream state (positions)");
  state->require_subcommand(1);

  auto* list = state->add_subcommand("list", "Every stream with its revision and position");
  add_common(list, o, false, false);
  list->add_option("--format", o.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  list->callback([exit_code] {
    Project p = load_project(o);
    json out = json::array();
    for (const auto& [loc, streams] : stores_of(p)) {
      auto store = open_state_if_exists(loc, services(p));
      for (const auto& name : streams) {
        auto st = store ? store->get(name) : std::nullopt;
        out.push_back(st ? st->to_json() : json{{"stream", name}, {"revision", 0}, {"position", nullptr}});
        out.back()["store"] = store ? store->describe() : loc.describe();
      }
    }
    if (o.format == "json") {
      Console::get().out(out.dump(2));
    } else {
      Console::get().out(fmt::format("{:<28} {:>8}  {:<24}  {}", "STREAM", "REVISION", "UPDATED", "POSITION"));
      for (const auto& s : out)
        Console::get().out(fmt::format("{:<28} {:>8}  {:<24}  {}", s.value("stream", ""), s.value("revision", 0),
                                       s.value("updated_at", "-"), pos(s["position"])));
    }
    *exit_code = 0;
  });

  auto* show = state->add_subcommand("show", "One stream's state");
  add_common(show, o, false, false);
  show->add_option("stream", stream, "Stream name")->required();
  show->add_option("--format", o.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  show->callback([exit_code] {
    Project p = load_project(o);
    auto loc = store_for(p, stream);
    auto store = open_state_if_exists(loc, services(p));
    auto st = store ? store->get(stream) : std::nullopt;
    json j = st ? st->to_json() : json{{"stream", stream}, {"revision", 0}, {"position", nullptr}};
    j["store"] = store ? store->describe() : loc.describe();
    if (o.format == "json") {
      Console::get().out(j.dump(2));
    } else {
      Console::get().out(fmt::format("stream:     {}\nstore:      {}\nrevision:   {}\nrun:        {}\nupdated at: {}\nposition:   {}",
                                     stream, j.value("store", ""), j.value("revision", 0), j.value("run_id", "-"),
                                     j.value("updated_at", "-"), j["position"].dump(2)));
    }
    *exit_code = 0;
  });

  auto* history = state->add_subcommand("history", "Every commit of a stream's state, oldest first");
  add_common(history, o, false, false);
  history->add_option("stream", stream, "Stream name")->required();
  history->add_option("--format", o.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  history->callback([exit_code] {
    Project p = load_project(o);
    auto store = open_state_if_exists(store_for(p, stream), services(p));
    json out = json::array();
    if (store)
      for (const auto& h : store->history(stream)) out.push_back(h.to_json());
    if (o.format == "json") {
      Console::get().out(out.dump(2));
    } else {
      Console::get().out(fmt::format("{:>8}  {:<8}  {:<24}  {:<26}  {}", "REVISION", "ACTION", "COMMITTED", "RUN", "POSITION"));
      for (const auto& h : out)
        Console::get().out(fmt::format("{:>8}  {:<8}  {:<24}  {:<26}  {}", h.value("revision", 0), h.value("action", ""),
                                       h.value("committed_at", ""), h.value("run_id", ""), pos(h["position"])));
    }
    *exit_code = 0;
  });

  auto change = [exit_code](bool reset) {
    Project p = load_project(o);
    auto loc = store_for(p, stream);
    auto store = open_state(loc, services(p));
    auto st = store->get(stream);
    json previous = st ? st->position : json();
    json next;
    if (!reset) {
      try {
        next = json::parse(position);
      } catch (const json::exception& e) {
        throw Error(ErrorCode::ConfigBadValue, std::string("--position is not valid JSON: ") + e.what());
      }
    }
    Console::get().out(fmt::format("stream {}: revision {}\n  previous position: {}\n  new position:      {}", stream,
                                   st ? st->revision : 0, pos(previous), pos(next)));
    if (!yes) {
      Console::get().out("not changed: add --yes to apply (the previous position is printed above)");
      *exit_code = 2;
      return;
    }
    auto after = store->commit(stream, st ? st->revision : 0, next, "manual", reset ? "reset" : "set");
    Console::get().out(fmt::format("committed revision {}", after.revision));
    *exit_code = 0;
  };
  auto* set = state->add_subcommand("set", "Set a stream's position (needs --yes)");
  add_common(set, o, false, false);
  set->add_option("stream", stream, "Stream name")->required();
  set->add_option("--position", position, "New position as JSON, e.g. '{\"cursor\": 120}'")->required();
  set->add_flag("--yes", yes, "Apply the change");
  set->callback([change] { change(false); });
  auto* reset = state->add_subcommand("reset", "Forget a stream's position: the next run starts over (needs --yes)");
  add_common(reset, o, false, false);
  reset->add_option("stream", stream, "Stream name")->required();
  reset->add_flag("--yes", yes, "Apply the change");
  reset->callback([change] { change(true); });
}

}  // namespace dpone::cli
