// UDP: UdpSocket, and addresses.
#pragma once

#include "coring/net/address.hpp"   // IWYU pragma: export
#include "coring/net/datagram.hpp"  // IWYU pragma: export
#include "coring/net/resolve.hpp"   // IWYU pragma: export
