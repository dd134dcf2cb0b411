// Everything of coring::net.
#pragma once

#include "coring/net/server.hpp"  // IWYU pragma: export
#include "coring/net/tcp.hpp"     // IWYU pragma: export
#include "coring/net/udp.hpp"     // IWYU pragma: export
#include "coring/net/unix.hpp"    // IWYU pragma: export
