// Which io_uring operations the running kernel has, for the fs layer's choices.
//
// fs probes instead of assuming (DESIGN invariant 5): truncate uses IORING_OP_FTRUNCATE
// only where the kernel has it (6.9) and the blocking pool otherwise, and the path
// operations newer than the ring's baseline (renameat and unlinkat 5.11, mkdirat,
// symlinkat and linkat 5.15) fail with ring::Errc::feature_unsupported on kernels
// without them instead of with the kernel's bare -EINVAL.
#pragma once

#include "coring/ring/abi.hpp"

namespace coring::fs {

// Whether operation `op` runs on the backend of the calling thread's loop: the kernel's
// io_uring, or the epoll emulation when the loop runs on it. Each is asked once per
// process (IORING_REGISTER_PROBE on a small ring of its own); a backend that cannot even
// set up that ring supports nothing.
[[nodiscard]] bool supports(ring::Op op) noexcept;

}  // namespace coring::fs
