// A seccomp filter that makes io_uring's system calls fail, as container runtimes'
// default profiles and hardened hosts do: for tests that run coring where io_uring is
// blocked (a forked child installs it; a filter cannot be removed).
#pragma once

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace coring::ring::test {

#if defined(__x86_64__)
constexpr std::uint32_t native_arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t native_arch = AUDIT_ARCH_AARCH64;
#else
constexpr std::uint32_t native_arch = 0;  // no filter written for this architecture
#endif

#ifndef SYS_io_uring_setup  // a C library older than io_uring
#define SYS_io_uring_setup 425
#define SYS_io_uring_enter 426
#define SYS_io_uring_register 427
#endif

#ifdef SECCOMP_RET_KILL_PROCESS
constexpr std::uint32_t kill_action = SECCOMP_RET_KILL_PROCESS;
#else
constexpr std::uint32_t kill_action = SECCOMP_RET_KILL;
#endif

// The filter's numbers: x86-64's and AArch64's (the generic table's).
constexpr std::uint32_t io_uring_setup_nr = 425;
constexpr std::uint32_t io_uring_enter_nr = 426;
constexpr std::uint32_t io_uring_register_nr = 427;

inline sock_filter statement(std::uint16_t code, std::uint32_t k) { return {code, 0, 0, k}; }
inline sock_filter jump(std::uint16_t code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
  return {code, jt, jf, k};
}

// The filter: io_uring's system calls fail with `error`, all else runs; a system call of
// another architecture (a 32-bit one) kills the process, which the servers never make.
class DenyIoUring {
 public:
  explicit DenyIoUring(int error) {
    constexpr auto ld = static_cast<std::uint16_t>(BPF_LD | BPF_W | BPF_ABS);
    constexpr auto jeq = static_cast<std::uint16_t>(BPF_JMP | BPF_JEQ | BPF_K);
    constexpr auto ret = static_cast<std::uint16_t>(BPF_RET | BPF_K);
    code_ = {
        statement(ld, static_cast<std::uint32_t>(offsetof(seccomp_data, arch))),
        jump(jeq, native_arch, 1, 0),
        statement(ret, kill_action),
        statement(ld, static_cast<std::uint32_t>(offsetof(seccomp_data, nr))),
        // x32's system calls come as x86-64's with bit 30 set: deny theirs too.
        statement(static_cast<std::uint16_t>(BPF_ALU | BPF_AND | BPF_K), ~0x40000000u),
        jump(jeq, io_uring_setup_nr, 3, 0),
        jump(jeq, io_uring_enter_nr, 2, 0),
        jump(jeq, io_uring_register_nr, 1, 0),
        statement(ret, SECCOMP_RET_ALLOW),
        statement(ret, SECCOMP_RET_ERRNO | (static_cast<std::uint32_t>(error) & SECCOMP_RET_DATA)),
    };
    program_.len = static_cast<unsigned short>(code_.size());
    program_.filter = code_.data();
  }
  DenyIoUring(const DenyIoUring&) = delete;
  DenyIoUring& operator=(const DenyIoUring&) = delete;
  [[nodiscard]] const sock_fprog* program() const { return &program_; }

 private:
  std::array<sock_filter, 10> code_{};
  sock_fprog program_{};
};

// Installs `program` on the calling thread: 0, or the errno. Async-signal-safe (it runs
// in forked children).
inline int install_filter(const sock_fprog* program) {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, program) == 0) return 0;
  if (errno != ENOSYS) return errno;
  return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, program) == 0 ? 0 : errno;
}

}  // namespace coring::ring::test
