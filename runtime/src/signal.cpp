// Signals through the loop: a signalfd polled through the ring, read on the loop's thread.
//
// The kernel queues a blocked signal as pending, on the thread it names or on the
// process. A signalfd reads pending signals of its set — those of the reading thread
// and those of the process — and polls readable while one is there. An io_uring read of
// the signalfd could run on a kernel worker (before signalfd had ->read_iter, and on the
// emulation's worker pool), which would see neither the loop thread's own pending
// signals nor, once blocked in the read, a cancel without a signal of its own. So the
// ring only polls (IORING_OP_POLL_ADD, re-checked by the kernel in the submitting
// thread's context), and the read is a non-blocking read(2) on the loop's thread, in
// the request's completion. If another reader took the signal in between, the read says
// EAGAIN and the request polls again before its coroutine resumes.
#include "coring/runtime/signal.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "coring/ring/prep.hpp"

namespace coring {

namespace detail {

void SignalWait::prep(ring::Sqe& sqe) const noexcept { ring::prep_poll_add(sqe, fd, POLLIN); }

bool SignalWait::again(const IoResult& polled) noexcept {
  if (polled.res < 0) return false;
  signalfd_siginfo raw{};
  const ssize_t n = ::read(fd, &raw, sizeof(raw));
  if (n == static_cast<ssize_t>(sizeof(raw))) {
    info = SignalInfo{static_cast<int>(raw.ssi_signo), raw.ssi_code,
                      static_cast<pid_t>(raw.ssi_pid), static_cast<uid_t>(raw.ssi_uid)};
    return false;
  }
  if (n < 0 && errno == EAGAIN) return true;  // another reader took it: poll again
  // A signalfd reads whole records; anything else is an error of its own.
  read_error = n < 0 ? errno : EIO;
  return false;
}

Result<SignalInfo> SignalWait::result(const IoResult& polled) const noexcept {
  if (info.signo != 0) return info;  // read: never dropped, even if a stop came after
  if (read_error != 0) return fail(std::error_code(read_error, std::system_category()));
  if (polled.res < 0) return fail(polled.error());
  // Readable, but the loop drained before the read (a stop that comes after the poll
  // completed still reads it, above): the signal stays pending for the next wait.
  return fail(std::make_error_code(std::errc::operation_canceled));
}

}  // namespace detail

namespace {

// The set of `signals`, checked: throws std::system_error(EINVAL) naming the problem.
sigset_t make_set(std::initializer_list<int> signals) {
  const auto invalid = [](const std::string& what) {
    return std::system_error(std::make_error_code(std::errc::invalid_argument),
                             "SignalSet: " + what);
  };
  if (signals.size() == 0) throw invalid("no signal given");
  sigset_t set;
  sigemptyset(&set);
  for (const int signo : signals) {
    if (signo == SIGKILL || signo == SIGSTOP) {
      throw invalid("SIGKILL and SIGSTOP cannot be caught, blocked or read");
    }
    if (sigaddset(&set, signo) != 0) throw invalid(std::to_string(signo) + " is not a signal");
  }
  return set;
}

void set_mask(int how, const sigset_t& set, sigset_t* old, const char* what) {
  const int err = ::pthread_sigmask(how, &set, old);
  if (err != 0) throw std::system_error(err, std::system_category(), what);
}

}  // namespace

SignalSet::SignalSet(std::initializer_list<int> signals) {
  const sigset_t set = make_set(signals);
  sigemptyset(&blocked_here_);
  sigset_t before;
  set_mask(SIG_BLOCK, set, &before, "SignalSet: pthread_sigmask");
  for (const int signo : signals) {
    if (sigismember(&before, signo) == 0) sigaddset(&blocked_here_, signo);
  }
  fd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd_ < 0) {
    const int err = errno;
    restore();
    throw std::system_error(err, std::system_category(),
                            err == EMFILE || err == ENFILE
                                ? "SignalSet: signalfd (out of file descriptors: RLIMIT_NOFILE)"
                                : "SignalSet: signalfd");
  }
}

SignalSet::~SignalSet() {
  if (fd_ >= 0) ::close(fd_);
  restore();
}

void SignalSet::restore() noexcept {
  // Discard what is pending of the signals about to be unblocked: delivered, a pending
  // SIGTERM would end the process. sigtimedwait() with a zero timeout takes one
  // instance per call, of this thread's or the process's, without waiting.
  const timespec now{};
  while (::sigtimedwait(&blocked_here_, nullptr, &now) > 0) {
  }
  (void)::pthread_sigmask(SIG_UNBLOCK, &blocked_here_, nullptr);
}

void SignalSet::block_in_thread(std::initializer_list<int> signals) {
  set_mask(SIG_BLOCK, make_set(signals), nullptr, "SignalSet::block_in_thread: pthread_sigmask");
}

void ignore_sigpipe() noexcept {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  (void)::sigaction(SIGPIPE, &ignore, nullptr);
}

}  // namespace coring
