// The user_data tag space: every value a CQE reaped by an EventLoop can carry, defined
// and decoded here and nowhere else.
//
//   value                          kind            the request it names
//   an Operation's address         operation       the Operation's request
//   an Operation's address | 1     linked_timeout  the Operation's linked timeout
//   an EventLoop's address | 2     msg_ring_sent   the sender's own CQE of a MSG_RING wake
//   0                              unowned         a request nobody waits for: cancels,
//                                                  EventLoop::submit_detached()
//   4                              msg_ring_wake   a MSG_RING wake another loop posted here
//   5..15                          hooks           a request of the loop's LoopHooks
//                                                  (loop_hooks.hpp), whose CQEs they take
//                                                  out before the loop sees a batch
//
// Operations and loops are at least 8-aligned and no object lives below address 16, so a
// value of 16 or more is an address with tag bits 0..2, and the values below 16 are free
// for requests that are no object's. Anything else is invalid: nothing submits it.
#pragma once

#include <cstdint>

namespace coring::detail::user_data {

inline constexpr std::uint64_t unowned_data = 0;
inline constexpr std::uint64_t msg_ring_wake_data = 4;
inline constexpr std::uint64_t hooks_data_first = 5;
inline constexpr std::uint64_t hooks_data_last = 15;
// Or'ed into an address.
inline constexpr std::uint64_t linked_timeout_tag = 1;
inline constexpr std::uint64_t msg_ring_sent_tag = 2;
// The values below this are reserved; an address is at least this.
inline constexpr std::uint64_t first_address = 16;
inline constexpr std::uint64_t tag_mask = 7;

enum class Kind : std::uint8_t {
  operation,
  linked_timeout,
  msg_ring_sent,
  unowned,
  msg_ring_wake,
  hooks,
  invalid,
};

// What `data` names. The first test is the one nearly every CQE takes.
constexpr Kind decode(std::uint64_t data) noexcept {
  if (data >= first_address) {
    switch (data & tag_mask) {
      case 0:
        return Kind::operation;
      case linked_timeout_tag:
        return Kind::linked_timeout;
      case msg_ring_sent_tag:
        return Kind::msg_ring_sent;
      default:
        return Kind::invalid;
    }
  }
  switch (data) {
    case unowned_data:
      return Kind::unowned;
    case msg_ring_wake_data:
      return Kind::msg_ring_wake;
    default:
      return data >= hooks_data_first && data <= hooks_data_last ? Kind::hooks : Kind::invalid;
  }
}

// The address a tagged value names (operation, linked_timeout, msg_ring_sent).
constexpr std::uint64_t address_of(std::uint64_t data) noexcept { return data & ~tag_mask; }

}  // namespace coring::detail::user_data
