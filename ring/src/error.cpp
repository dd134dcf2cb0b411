// Messages for the ring layer's errors.
//
// Each io_uring system call gets its own error category: the same errno means
// different things for setup, enter and register, and the person reading the
// message needs to know both what failed and what to try. Every category maps
// its values back to std::generic_category(), so callers can still compare a
// code with std::errc.
//
// ENOMEM depends on what the running kernel charges to RLIMIT_MEMLOCK, so its
// message is built from the kernel release, the process's CAP_IPC_LOCK and its
// limit, read when the message is asked for. A process without CAP_IPC_LOCK has
// its io_uring memory counted in its user's locked_vm, shared by all processes of
// that user, and checked against the caller's RLIMIT_MEMLOCK: registered buffers
// on every kernel; the rings (SQ/CQ and SQE arrays) before 5.12, and again from
// 6.14, when the rings and provided-buffer rings became accounted regions
// (io_create_region()). Between 5.12 and 6.13 the rings are charged to the memory
// cgroup only.
#include "coring/ring/error.hpp"

#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace coring::ring {
namespace {

std::string with_errno(const char* call, int ev, std::string_view advice) {
  std::string text = call;
  text += ": ";
  text += std::strerror(ev);
  if (!advice.empty()) {
    text += " (";
    text += advice;
    text += ")";
  }
  return text;
}

// What RLIMIT_MEMLOCK means for this process on this kernel.
struct Memlock {
  int major = 0;
  int minor = 0;
  bool exempt = false;  // CAP_IPC_LOCK in the effective set: nothing is charged
  rlim_t limit = RLIM_INFINITY;

  [[nodiscard]] bool kernel_before(int want_major, int want_minor) const {
    return major < want_major || (major == want_major && minor < want_minor);
  }
  [[nodiscard]] bool charges_rings() const {
    return !exempt && (kernel_before(5, 12) || !kernel_before(6, 14));
  }
  [[nodiscard]] bool charges_buffer_rings() const { return !exempt && !kernel_before(6, 14); }
  [[nodiscard]] std::string kernel() const {
    return "Linux " + std::to_string(major) + "." + std::to_string(minor);
  }
  [[nodiscard]] std::string limit_text() const {
    if (limit == RLIM_INFINITY) return "unlimited";
    return std::to_string(limit / 1024) + " KiB";
  }
};

Memlock read_memlock() {
  Memlock memlock;
  utsname names{};
  if (::uname(&names) == 0) std::sscanf(names.release, "%d.%d", &memlock.major, &memlock.minor);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3]{};
  if (::syscall(SYS_capget, &header, caps) == 0) {
    memlock.exempt = (caps[CAP_TO_INDEX(CAP_IPC_LOCK)].effective & CAP_TO_MASK(CAP_IPC_LOCK)) != 0;
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_MEMLOCK, &limit) == 0) memlock.limit = limit.rlim_cur;
  return memlock;
}

constexpr std::string_view raise_memlock =
    "raise it (ulimit -l; LimitMEMLOCK= in a systemd unit; docker run --ulimit memlock=BYTES)";

constexpr std::string_view exempt =
    "RLIMIT_MEMLOCK does not apply to this process, which has CAP_IPC_LOCK, so the system or "
    "the memory cgroup is out of memory";

std::string setup_enomem() {
  const Memlock memlock = read_memlock();
  if (memlock.exempt) {
    return "the kernel could not allocate the rings; " + std::string(exempt) +
           ": free memory, raise the cgroup's limit, or use fewer entries";
  }
  if (!memlock.charges_rings()) {
    return "the kernel could not allocate the rings; " + memlock.kernel() +
           " charges them to the memory cgroup, not to RLIMIT_MEMLOCK: free memory, raise the "
           "cgroup's limit, or use fewer entries";
  }
  return memlock.kernel() +
         " charges each ring's SQ, CQ and SQE arrays to RLIMIT_MEMLOCK for a process without "
         "CAP_IPC_LOCK; the charge covers all of the user's processes and the limit is " +
         memlock.limit_text() + ": " + std::string(raise_memlock) +
         ", or set up fewer or smaller rings: a ring takes 64 bytes per SQE and 16 per CQE, "
         "rounded up to pages, so 1284 KiB for 4096 SQEs and 65536 CQEs";
}

std::string register_enomem() {
  const Memlock memlock = read_memlock();
  if (memlock.exempt) {
    return "the kernel could not pin or allocate the memory; " + std::string(exempt) +
           ": free memory or register less";
  }
  const bool buffer_rings = memlock.charges_buffer_rings();
  return memlock.kernel() + " pins " +
         (buffer_rings ? "registered buffers and provided-buffer rings" : "registered buffers") +
         " and charges them" + (memlock.charges_rings() ? ", like its rings," : "") +
         " to RLIMIT_MEMLOCK for a process without CAP_IPC_LOCK; the charge covers all of the "
         "user's processes and the limit is " +
         memlock.limit_text() + ": " + std::string(raise_memlock) +
         ", or register fewer or smaller buffers" +
         (buffer_rings ? ", or provided-buffer rings of fewer entries" : "");
}

class SyscallCategory : public std::error_category {
 public:
  std::error_condition default_error_condition(int ev) const noexcept override {
    return std::generic_category().default_error_condition(ev);
  }
};

class SetupCategory final : public SyscallCategory {
 public:
  const char* name() const noexcept override { return "io_uring_setup"; }
  std::string message(int ev) const override {
    std::string_view advice;
    switch (ev) {
      case EPERM:
        advice =
            "io_uring is disabled by the kernel.io_uring_disabled sysctl (set it to 0, or to 1 "
            "and join the kernel.io_uring_group), or a seccomp filter such as a container "
            "runtime's default profile blocks io_uring; SQPOLL before 5.11 also needs "
            "CAP_SYS_ADMIN";
        break;
      case ENOSYS:
        advice =
            "this kernel has no io_uring: it was built without CONFIG_IO_URING or is older than "
            "5.1";
        break;
      case EINVAL:
        advice =
            "the kernel rejected the parameters: an unsupported setup flag for this kernel, "
            "entries out of range, CQSIZE with a bad cq_entries, SQ_AFF without SQPOLL, "
            "DEFER_TASKRUN without SINGLE_ISSUER, or non-zero reserved fields";
        break;
      case ENOMEM:
        return with_errno("io_uring_setup", ev, setup_enomem());
      case EMFILE:
        advice = "this process has reached RLIMIT_NOFILE (ulimit -n); close fds or raise it";
        break;
      case ENFILE:
        advice = "the system-wide file table is full (fs.file-max)";
        break;
      case EFAULT:
        advice = "the params pointer is outside the accessible address space";
        break;
      case EBADF:
        advice = "ATTACH_WQ was given a wq_fd that is not an io_uring";
        break;
      default:
        break;
    }
    return with_errno("io_uring_setup", ev, advice);
  }
};

class EnterCategory final : public SyscallCategory {
 public:
  const char* name() const noexcept override { return "io_uring_enter"; }
  std::string message(int ev) const override {
    std::string_view advice;
    switch (ev) {
      case EAGAIN:
        advice = "the kernel ran out of resources for new requests: reap completions and retry";
        break;
      case EBUSY:
        advice =
            "the completion queue is overcommitted (CQ overflow with no NODROP room): reap "
            "completions, then submit again";
        break;
      case EBADF:
        advice =
            "the ring fd is invalid, or an SQE named a direct descriptor with no files registered";
        break;
      case EBADFD:
        advice = "the ring is not enabled yet: it was created with R_DISABLED; enable it first";
        break;
      case EINVAL:
        advice = "an SQE or the enter flags are invalid for this ring or kernel";
        break;
      case EFAULT:
        advice = "a buffer is outside the address space, or a fixed buffer is not registered";
        break;
      case ENXIO:
        advice = "the ring is shutting down";
        break;
      case EOPNOTSUPP:
        advice = "the fd is not an io_uring, or this kernel does not support the opcode";
        break;
      case EINTR:
        advice = "a signal arrived while waiting: call again";
        break;
      case ETIME:
        advice = "the wait timed out before enough completions arrived";
        break;
      case EEXIST:
        advice = "SINGLE_ISSUER ring used from a thread other than its submitter";
        break;
      default:
        break;
    }
    return with_errno("io_uring_enter", ev, advice);
  }
};

class RegisterCategory final : public SyscallCategory {
 public:
  const char* name() const noexcept override { return "io_uring_register"; }
  std::string message(int ev) const override {
    std::string_view advice;
    switch (ev) {
      case ENOMEM:
        return with_errno("io_uring_register", ev, register_enomem());
      case EBUSY:
        advice = "that resource is already registered: unregister it first";
        break;
      case ENXIO:
        advice = "nothing of that kind is registered, or the ring is shutting down";
        break;
      case EBADF:
        advice = "a file descriptor in the request is invalid";
        break;
      case EMFILE:
        advice = "the request exceeds RLIMIT_NOFILE or the kernel's fixed-table limit";
        break;
      case EINVAL:
        advice = "the kernel rejected the arguments: bad sizes, flags, reserved fields or count";
        break;
      case EFAULT:
        advice = "an argument points outside the address space, or a buffer is file-backed";
        break;
      case EEXIST:
        advice = "that id or slot is already in use";
        break;
      case EACCES:
        advice = "the ring's restrictions forbid this registration opcode";
        break;
      case EOPNOTSUPP:
        advice = "this kernel does not support the operation";
        break;
      case EBADFD:
        advice = "the ring is not in a state that allows this (restrictions need R_DISABLED)";
        break;
      default:
        break;
    }
    return with_errno("io_uring_register", ev, advice);
  }
};

class RingCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "coring.ring"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::entries_zero:
        return "ring entries must be at least 1";
      case Errc::entries_not_power_of_two:
        return "ring entries must be a power of two";
      case Errc::entries_too_large:
        return "ring entries must be at most 32768";
      case Errc::cq_entries_invalid:
        return "cq_entries must be set (with setup::cqsize) and at least the SQ entries";
      case Errc::kernel_too_old:
        return "this kernel lacks IORING_FEAT_SINGLE_MMAP (5.4): upgrade to 5.4 or newer";
      case Errc::buf_ring_entries_out_of_range:
        return "buffer ring entries must be between 1 and 32768";
      case Errc::buf_ring_entries_not_power_of_two:
        return "buffer ring entries must be a power of two";
      case Errc::buffer_size_invalid:
        return "buffer size must be between 1 byte and 4 GiB - 1";
      case Errc::buffer_id_invalid:
        return "the completion names no provided buffer of this group";
      case Errc::submission_queue_full:
        return "the submission queue is full: submit, then retry";
      case Errc::feature_unsupported:
        return "the running kernel does not support this io_uring feature";
      case Errc::setup_flag_unsupported:
        return "coring does not support the setup flags no_mmap, registered_fd_only and "
               "cqe_mixed: it maps the rings itself and reads fixed-size CQEs";
      case Errc::backend_unknown:
        return "CORING_BACKEND must be \"io_uring\" or \"epoll\" (or unset: io_uring, and the "
               "epoll emulation where io_uring is blocked)";
    }
    return "unknown coring.ring error";
  }
  std::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<Errc>(ev)) {
      case Errc::submission_queue_full:
        return std::errc::resource_unavailable_try_again;
      case Errc::kernel_too_old:
      case Errc::feature_unsupported:
      case Errc::setup_flag_unsupported:
        return std::errc::not_supported;
      default:
        return std::errc::invalid_argument;
    }
  }
};

}  // namespace

const std::error_category& ring_category() noexcept {
  static const RingCategory category;
  return category;
}
const std::error_category& setup_category() noexcept {
  static const SetupCategory category;
  return category;
}
const std::error_category& enter_category() noexcept {
  static const EnterCategory category;
  return category;
}
const std::error_category& register_category() noexcept {
  static const RegisterCategory category;
  return category;
}

}  // namespace coring::ring
