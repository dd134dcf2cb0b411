// Probe: which io_uring operations the running kernel supports.
//
// coring never assumes a kernel feature: callers ask Ring::get_probe() and
// check is_supported(op) before relying on an opcode newer than 5.6.
#pragma once

#include <array>
#include <cstdint>

#include "coring/ring/abi.hpp"

namespace coring::ring {

class Probe {
 public:
  // The kernel fills at most this many op entries (the u8 opcode space).
  static constexpr std::size_t max_ops = 256;

  // Whether the kernel knows `op` and supports it. Matches io_uring_opcode_supported().
  [[nodiscard]] bool is_supported(Op op) const noexcept {
    const auto index = static_cast<std::uint8_t>(op);
    if (index > header_.last_op || index >= header_.ops_len) return false;
    return (ops_[index].flags & probe_op_supported) != 0;
  }
  // The highest opcode this kernel knows.
  [[nodiscard]] Op last_op() const noexcept { return static_cast<Op>(header_.last_op); }

 private:
  friend class Ring;
  // Laid out as struct io_uring_probe: header, then the ops array.
  ProbeHeader header_{};
  std::array<ProbeOp, max_ops> ops_{};
};

}  // namespace coring::ring
