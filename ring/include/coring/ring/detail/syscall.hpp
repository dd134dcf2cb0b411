// The three io_uring system calls, and nothing else.
//
// Used by ring/ only (ring.hpp inlines enter() so that the system call sits in the
// caller's own frame; see Ring::enter): no other part of coring calls the kernel's
// io_uring interface directly. Each returns the kernel's result, or -errno on failure,
// as liburing's __sys_io_uring_* do. On x86-64 and AArch64 the calls are made
// inline, without libc's syscall(2) wrapper, which saves a call and the errno
// store on the submit path; other architectures use syscall(2).
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

#include "coring/ring/abi.hpp"

namespace coring::ring::sys {

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

#if defined(__x86_64__)
inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f) noexcept {
  long ret;
  register long r10 asm("r10") = d;
  register long r8 asm("r8") = e;
  register long r9 asm("r9") = f;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f) noexcept {
  register long x8 asm("x8") = nr;
  register long x0 asm("x0") = a;
  register long x1 asm("x1") = b;
  register long x2 asm("x2") = c;
  register long x3 asm("x3") = d;
  register long x4 asm("x4") = e;
  register long x5 asm("x5") = f;
  asm volatile("svc 0"
               : "+r"(x0)
               : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
               : "memory");
  return x0;
}
#else
inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f) noexcept {
  long ret = ::syscall(nr, a, b, c, d, e, f);
  return ret < 0 ? -errno : ret;
}
#endif

inline int io_uring_setup(unsigned entries, Params* params) noexcept {
  return static_cast<int>(raw_syscall6(__NR_io_uring_setup, static_cast<long>(entries),
                                       reinterpret_cast<long>(params), 0, 0, 0, 0));
}

inline int io_uring_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
                          const void* arg, std::size_t arg_size) noexcept {
  return static_cast<int>(raw_syscall6(__NR_io_uring_enter, fd, static_cast<long>(to_submit),
                                       static_cast<long>(min_complete), static_cast<long>(flags),
                                       reinterpret_cast<long>(arg), static_cast<long>(arg_size)));
}

inline int io_uring_register(int fd, unsigned opcode, const void* arg, unsigned nr_args) noexcept {
  return static_cast<int>(raw_syscall6(__NR_io_uring_register, fd, static_cast<long>(opcode),
                                       reinterpret_cast<long>(arg), static_cast<long>(nr_args), 0,
                                       0));
}

}  // namespace coring::ring::sys
