// Errors of the ring layer.
//
// A failed io_uring_setup(2), io_uring_enter(2) or io_uring_register(2) becomes
// a std::error_code whose value is the errno and whose category knows which
// call failed, so message() can say what happened and what to do about it
// (EPERM at setup names the kernel.io_uring_disabled sysctl and seccomp). ENOMEM
// at setup or registration names RLIMIT_MEMLOCK and says whether it applies: the
// message reads the kernel release, CAP_IPC_LOCK and the limit when it is built, so
// it is right for the process and kernel that ask. These codes still compare equal
// to std::errc values: `ec == std::errc::operation_not_permitted` holds.
//
// Bad arguments that we catch before the kernel sees them get a coring::ring::Errc.
#pragma once

#include <system_error>

namespace coring::ring {

enum class Errc {
  entries_zero = 1,
  entries_not_power_of_two,
  entries_too_large,
  cq_entries_invalid,
  kernel_too_old,
  buf_ring_entries_out_of_range,
  buf_ring_entries_not_power_of_two,
  buffer_size_invalid,
  buffer_id_invalid,
  submission_queue_full,
  feature_unsupported,
  setup_flag_unsupported,
  backend_unknown,
};

// The category of Errc: "coring.ring".
const std::error_category& ring_category() noexcept;
// Categories for errnos returned by each of the three io_uring system calls.
const std::error_category& setup_category() noexcept;
const std::error_category& enter_category() noexcept;
const std::error_category& register_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), ring_category()};
}
inline std::error_code setup_error(int errno_value) noexcept {
  return {errno_value, setup_category()};
}
inline std::error_code enter_error(int errno_value) noexcept {
  return {errno_value, enter_category()};
}
inline std::error_code register_error(int errno_value) noexcept {
  return {errno_value, register_category()};
}

}  // namespace coring::ring

template <>
struct std::is_error_code_enum<coring::ring::Errc> : std::true_type {};
