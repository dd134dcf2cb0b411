// coring-bench idle: what an idle connection costs a server in resident memory, for
// coring-echo and the epoll echo server of `coring-bench echo`.
#pragma once

#include "cli.hpp"

namespace coring::bench {

int idle_main(Args& args);

}  // namespace coring::bench
