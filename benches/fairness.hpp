// coring-bench fairness: how fast a server answers a fresh connection while N others
// send without ever reading, for coring-echo and coring-http beside the epoll echo server
// and nginx; and whether every byte of those N arrives intact once they read.
#pragma once

#include "cli.hpp"

namespace coring::bench {

int fairness_main(Args& args);

}  // namespace coring::bench
