// Unix sockets: UnixListener and UnixStream (the TCP types, on a unix: address) and
// UnixDatagram (the UDP type).
#pragma once

#include "coring/net/address.hpp"   // IWYU pragma: export
#include "coring/net/datagram.hpp"  // IWYU pragma: export
#include "coring/net/listener.hpp"  // IWYU pragma: export
#include "coring/net/stream.hpp"    // IWYU pragma: export
