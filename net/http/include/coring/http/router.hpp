// Router: which handler serves a request, by method and path.
//
//   http::Router router;
//   router.get("/", hello);                        // exact path; GET also serves HEAD
//   router.post("/upload", upload);
//   router.prefix("GET", "/static/", files);       // every path under /static/
//
// Exact routes win over prefixes, and a longer prefix over a shorter one. A path that
// some route serves, but not with the request's method, is answered 405 with an Allow
// field naming the methods that would do; a path nobody serves, 404. A route for GET
// also serves HEAD (the server sends the head of the GET's response without its body)
// unless a route for HEAD itself is added.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "coring/http/message.hpp"
#include "coring/runtime/task.hpp"

namespace coring::http {

using Handler = std::function<Task<Response>(Request&)>;

class Router {
 public:
  // `method` as sent ("GET", "PROPFIND"); empty: every method.
  Router& route(std::string_view method, std::string path, Handler handler);
  Router& prefix(std::string_view method, std::string path_prefix, Handler handler);
  Router& get(std::string path, Handler handler) {
    return route("GET", std::move(path), std::move(handler));
  }
  Router& post(std::string path, Handler handler) {
    return route("POST", std::move(path), std::move(handler));
  }
  Router& put(std::string path, Handler handler) {
    return route("PUT", std::move(path), std::move(handler));
  }

  struct Match {
    const Handler* handler = nullptr;  // null: answer `status`
    int status = 404;                  // 404 or 405 when there is no handler
    std::string allow;                 // for a 405: the methods the path has
  };
  [[nodiscard]] Match find(std::string_view method, std::string_view path) const;

 private:
  struct Route {
    std::string method;
    std::string path;
    bool is_prefix;
    Handler handler;
  };
  [[nodiscard]] bool serves(const Route& route, std::string_view method) const noexcept;

  std::vector<Route> routes_;
};

}  // namespace coring::http
