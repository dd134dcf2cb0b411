// Router: a list searched in order of precedence. A server has tens of routes, not
// thousands: a scan of short strings is cheaper than any tree for them.
#include "coring/http/router.hpp"

#include <algorithm>
#include <utility>

namespace coring::http {

Router& Router::route(std::string_view method, std::string path, Handler handler) {
  routes_.push_back({std::string(method), std::move(path), false, std::move(handler)});
  return *this;
}

Router& Router::prefix(std::string_view method, std::string path_prefix, Handler handler) {
  routes_.push_back({std::string(method), std::move(path_prefix), true, std::move(handler)});
  return *this;
}

bool Router::serves(const Route& route, std::string_view method) const noexcept {
  if (route.method.empty() || route.method == method) return true;
  if (method != "HEAD" || route.method != "GET") return false;
  // HEAD falls back to GET only where no route for HEAD takes the same path.
  for (const Route& other : routes_) {
    if (other.method == "HEAD" && other.path == route.path && other.is_prefix == route.is_prefix) {
      return false;
    }
  }
  return true;
}

namespace {
// Adds `method` to a 405's Allow list unless it is there (with HEAD after GET).
void allow_method(std::string& allow, std::string_view method) {
  auto listed = [&](std::string_view name) {
    std::string_view rest = allow;
    while (!rest.empty()) {
      const std::size_t comma = rest.find(", ");
      if (rest.substr(0, comma) == name) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 2);
    }
    return false;
  };
  for (const std::string_view name : {method, method == "GET" ? std::string_view("HEAD") : ""}) {
    if (name.empty() || listed(name)) continue;
    if (!allow.empty()) allow += ", ";
    allow += name;
  }
}
}  // namespace

Router::Match Router::find(std::string_view method, std::string_view path) const {
  // Candidates in precedence order: exact routes, then prefixes from the longest down;
  // the first that serves the method wins.
  bool path_known = false;
  std::string allow;
  for (const Route& route : routes_) {
    if (route.is_prefix || route.path != path) continue;
    if (serves(route, method)) return {&route.handler, 0, {}};
    path_known = true;
    allow_method(allow, route.method);
  }
  std::size_t below = std::string::npos;  // the next pass takes prefixes shorter than this
  for (;;) {
    std::size_t longest = 0;
    bool found = false;
    for (const Route& route : routes_) {
      if (route.is_prefix && route.path.size() < below && path.starts_with(route.path)) {
        longest = found ? std::max(longest, route.path.size()) : route.path.size();
        found = true;
      }
    }
    if (!found) break;
    for (const Route& route : routes_) {
      if (!route.is_prefix || route.path.size() != longest || !path.starts_with(route.path))
        continue;
      if (serves(route, method)) return {&route.handler, 0, {}};
      path_known = true;
      allow_method(allow, route.method);
    }
    if (longest == 0) break;
    below = longest;
  }
  if (!path_known) return {nullptr, 404, {}};
  return {nullptr, 405, std::move(allow)};
}

}  // namespace coring::http
