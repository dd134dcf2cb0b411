// TCP: TcpListener and TcpStream (with provided-buffer receive), and addresses.
#pragma once

#include "coring/net/address.hpp"      // IWYU pragma: export
#include "coring/net/buffer_pool.hpp"  // IWYU pragma: export
#include "coring/net/listener.hpp"     // IWYU pragma: export
#include "coring/net/reader.hpp"       // IWYU pragma: export
#include "coring/net/recv_stream.hpp"  // IWYU pragma: export
#include "coring/net/resolve.hpp"      // IWYU pragma: export
#include "coring/net/splice.hpp"       // IWYU pragma: export
#include "coring/net/stream.hpp"       // IWYU pragma: export
