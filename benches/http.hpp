// coring-bench http: coring-http against nginx under wrk.
#pragma once

#include "cli.hpp"

namespace coring::bench {

int http_main(Args& args);

}  // namespace coring::bench
