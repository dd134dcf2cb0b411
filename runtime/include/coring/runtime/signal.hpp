// SignalSet: co_await a POSIX signal, read through a signalfd on the loop.
//
//   coring::SignalSet signals{SIGINT, SIGTERM};
//   Result<SignalInfo> got = co_await signals.next().with_stop(token);
//
// The set blocks its signals in the constructing thread (pthread_sigmask), so that
// they stay pending instead of running their default action, and reads them from a
// signalfd. next() polls the signalfd through the ring (IORING_OP_POLL_ADD) and, once
// it is readable, reads one signal with a non-blocking read(2) on the loop's thread: a
// signalfd yields the signals pending for the thread that reads it and for the
// process, so the read must run on the thread that blocked them, not on a kernel
// worker. A signal that arrived before next() is returned at once.
//
// Threads. A process-directed signal (kill(1), Ctrl-C) goes to any thread that does
// not block it, where it runs its default action (SIGINT, SIGTERM: the process ends)
// and never reaches the signalfd. Every thread must therefore block the set's
// signals: call SignalSet::block_in_thread() (or build the SignalSet) before starting
// other threads, which inherit the mask. A thread-directed signal (raise(),
// pthread_kill()) is seen only by the thread it names: send it to the loop's thread.
//
// The destructor closes the signalfd and restores what the constructor changed, in the
// constructing thread: the signals it blocked are unblocked, after any instance still
// pending is discarded (delivered now, a SIGTERM would end the process). Signals that
// were already blocked when the set was built stay blocked, pending ones included:
// block them with block_in_thread() first to keep them blocked for the life of the
// process, which is what a server that may get SIGTERM while it shuts down wants.
//
// Dispositions are left alone: a blocked signal is queued even if the process ignores
// it (as a shell makes background jobs ignore SIGINT), so the set receives it.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cerrno>
#include <cstdint>
#include <initializer_list>

#include "coring/ring/result.hpp"
#include "coring/runtime/request.hpp"

namespace coring {

// One signal as the signalfd reported it (struct signalfd_siginfo).
struct SignalInfo {
  int signo = 0;  // SIGINT, SIGTERM, ...
  int code = 0;   // si_code: SI_USER (kill), SI_TKILL (raise, pthread_kill), SI_QUEUE, ...
  pid_t pid = 0;  // the sender, for a signal sent by a process
  uid_t uid = 0;  // the sender's real user id
};

namespace detail {

// next()'s body for request(): poll the signalfd, then read it on the loop's thread;
// poll again if another reader took the signal first.
struct SignalWait {
  int fd;
  SignalInfo info{};
  int read_error = 0;  // the read's errno, when the poll said readable and the read failed

  void prep(ring::Sqe& sqe) const noexcept;
  bool again(const IoResult& polled) noexcept;
  Result<SignalInfo> result(const IoResult& polled) const noexcept;
};

}  // namespace detail

class SignalSet {
 public:
  // Blocks `signals` in this thread and opens a signalfd (SFD_CLOEXEC) for them. Throws
  // std::system_error: EINVAL for an empty set, an invalid number, SIGKILL or SIGSTOP
  // (which cannot be caught); EMFILE/ENFILE/ENOMEM from signalfd(2).
  SignalSet(std::initializer_list<int> signals);
  // See the header comment: closes the signalfd and restores the mask it changed. Call on the
  // constructing thread, with no next() in flight.
  ~SignalSet();
  SignalSet(const SignalSet&) = delete;
  SignalSet& operator=(const SignalSet&) = delete;

  // The next signal of the set, on the current loop. The awaitable is a request()
  // (request.hpp): .with_stop(token) cancels the wait (error ECANCELED),
  // .with_timeout(d) / .with_deadline(d) bound it (ETIMEDOUT). Other errors are the
  // poll's or the read's.
  [[nodiscard]] auto next() const noexcept { return request(detail::SignalWait{fd_}); }

  // The signalfd, for a loop of another kind.
  [[nodiscard]] int fd() const noexcept { return fd_; }

  // Blocks `signals` in the calling thread and nothing more: call it in main() before
  // any thread starts, so that every thread inherits the mask and a SignalSet built
  // later on a loop's thread receives the process's signals. Throws std::system_error
  // (EINVAL) like the constructor.
  static void block_in_thread(std::initializer_list<int> signals);

 private:
  // Unblocks what the constructor blocked, discarding what is pending of it.
  void restore() noexcept;

  int fd_ = -1;
  sigset_t blocked_here_{};  // blocked by the constructor: unblocked by the destructor
};

// Ignores SIGPIPE in the process: a write to a pipe or socket whose reader has gone
// then fails with EPIPE instead of killing the process. Every server wants it (sends
// through net/ pass MSG_NOSIGNAL, but a log written to a closed pipe does not).
void ignore_sigpipe() noexcept;

}  // namespace coring
