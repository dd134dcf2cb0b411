// SignalSet: signals sent to the process or to the loop's thread are read through the
// loop, with their sender; a signal that came before next() is not lost; a wait is
// cancelled by its stop token or bounded by a timeout; the destructor restores the
// mask it changed, discarding what is pending rather than dying of it; an ignored
// signal is received all the same; bad signal numbers are refused at construction; the signalfd is
// closed.
#include "coring/runtime/signal.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <set>
#include <stop_token>
#include <system_error>
#include <thread>
#include <utility>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/when_all.hpp"
#include "support.hpp"

namespace coring {
namespace {

using namespace std::chrono_literals;
using ring::test::count_open_fds;

bool blocked_in_this_thread(int signo) {
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  return sigismember(&mask, signo) == 1;
}

bool pending(int signo) {
  sigset_t set;
  sigpending(&set);
  return sigismember(&set, signo) == 1;
}

void (*disposition(int signo))(int) {
  struct sigaction current {};
  sigaction(signo, nullptr, &current);
  return current.sa_handler;
}

// Leaves the test's signals as the process had them, whatever a failed test left.
class SignalsRestored {
 public:
  SignalsRestored() { pthread_sigmask(SIG_SETMASK, nullptr, &mask_); }
  ~SignalsRestored() {
    for (const int signo : {SIGUSR1, SIGUSR2}) ::signal(signo, SIG_IGN);  // drops pending ones
    for (const int signo : {SIGUSR1, SIGUSR2}) ::signal(signo, SIG_DFL);
    pthread_sigmask(SIG_SETMASK, &mask_, nullptr);
  }

 private:
  sigset_t mask_{};
};

Task<Result<SignalInfo>> next_of(const SignalSet& signals) { co_return co_await signals.next(); }

TEST(RuntimeSignal, SignalRaisedBeforeNextIsReadWithItsSender) {
  SignalsRestored restored;
  EventLoop loop;
  SignalSet signals{SIGUSR1, SIGUSR2};
  ASSERT_EQ(::raise(SIGUSR1), 0);  // blocked: pending on this thread until read
  const Result<SignalInfo> got = loop.run(next_of(signals));
  ASSERT_TRUE(got) << got.message();
  EXPECT_EQ(got->signo, SIGUSR1);
  EXPECT_EQ(got->code, SI_TKILL);
  EXPECT_EQ(got->pid, ::getpid());
  EXPECT_EQ(got->uid, ::getuid());
}

TEST(RuntimeSignal, ProcessAndThreadDirectedSignalsBothArrive) {
  SignalsRestored restored;
  EventLoop loop;
  SignalSet signals{SIGUSR1, SIGUSR2};
  ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
  ASSERT_EQ(::pthread_kill(::pthread_self(), SIGUSR1), 0);
  auto both = [](const SignalSet& set) -> Task<std::multiset<int>> {
    std::multiset<int> seen;
    for (int i = 0; i < 2; ++i) {
      const Result<SignalInfo> got = co_await set.next();
      if (!got) co_return seen;
      seen.insert(got->signo);
    }
    co_return seen;
  };
  EXPECT_EQ(loop.run(both(signals)), (std::multiset<int>{SIGUSR1, SIGUSR2}));
  EXPECT_FALSE(pending(SIGUSR1));
  EXPECT_FALSE(pending(SIGUSR2));
}

TEST(RuntimeSignal, WaitingNextWakesForASignalSentLater) {
  SignalsRestored restored;
  EventLoop loop;
  SignalSet signals{SIGUSR1};
  // The waiter polls first (when_all starts it first); the sender sends after a turn.
  auto send_later = []() -> Task<int> {
    (void)co_await nop();
    co_return ::kill(::getpid(), SIGUSR1);
  };
  auto both = [&]() -> Task<Result<SignalInfo>> {
    auto [got, sent] = co_await when_all(next_of(signals), send_later());
    EXPECT_EQ(sent, 0);
    co_return std::move(got);
  };
  const Result<SignalInfo> got = loop.run(both());
  ASSERT_TRUE(got) << got.message();
  EXPECT_EQ(got->signo, SIGUSR1);
  EXPECT_EQ(got->code, SI_USER);
  EXPECT_EQ(got->pid, ::getpid());
}

// A thread started after the set inherits the mask, so a signal it sends to the
// process reaches the signalfd instead of running its default action there.
TEST(RuntimeSignal, SignalFromAnotherThreadArrives) {
  SignalsRestored restored;
  EventLoop loop;
  SignalSet signals{SIGUSR2};
  std::thread sender([] {
    EXPECT_TRUE(blocked_in_this_thread(SIGUSR2));
    std::this_thread::sleep_for(10ms);
    EXPECT_EQ(::kill(::getpid(), SIGUSR2), 0);
  });
  const Result<SignalInfo> got = loop.run(next_of(signals));
  sender.join();
  ASSERT_TRUE(got) << got.message();
  EXPECT_EQ(got->signo, SIGUSR2);
}

TEST(RuntimeSignal, StopTokenCancelsTheWait) {
  SignalsRestored restored;
  EventLoop loop;
  SignalSet signals{SIGUSR1};
  std::stop_source stop;
  auto wait = [&]() -> Task<Result<SignalInfo>> {
    co_return co_await signals.next().with_stop(stop.get_token());
  };
  auto stop_later = [&]() -> Task<int> {
    (void)co_await nop();
    stop.request_stop();
    co_return 0;
  };
  auto both = [&]() -> Task<Result<SignalInfo>> {
    auto [got, done] = co_await when_all(wait(), stop_later());
    (void)done;
    co_return std::move(got);
  };
  const Result<SignalInfo> got = loop.run(both());
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), std::errc::operation_canceled);
  // A token already stopped submits nothing.
  const Result<SignalInfo> again = loop.run(wait());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), std::errc::operation_canceled);
}

// The poll completes at once (the signal is pending) in the same enter as the cancel
// that a stop asked for right after the wait began: the poll completed, so the signal
// is read and delivered, and none is left for the next wait.
TEST(RuntimeSignal, StopAfterThePollCompletedStillDeliversTheSignal) {
  SignalsRestored restored;
  EventLoop loop;
  SignalSet signals{SIGUSR1};
  ASSERT_EQ(::raise(SIGUSR1), 0);
  std::stop_source stop;
  auto wait = [&]() -> Task<Result<SignalInfo>> {
    co_return co_await signals.next().with_stop(stop.get_token());
  };
  auto stop_now = [&]() -> Task<int> {
    stop.request_stop();
    co_return 0;
  };
  auto both = [&]() -> Task<Result<SignalInfo>> {
    auto [got, done] = co_await when_all(wait(), stop_now());
    (void)done;
    co_return std::move(got);
  };
  // The poll's SQE goes before the cancel's, and the signal is pending: the poll
  // completes, and a poll that completed is read even though the stop came — the whole
  // signal, never dropped.
  const Result<SignalInfo> got = loop.run(both());
  ASSERT_TRUE(got) << got.message();
  EXPECT_EQ(got->signo, SIGUSR1);
  // Nothing is left pending: the next wait times out.
  const Result<SignalInfo> later = loop.run([&]() -> Task<Result<SignalInfo>> {
    co_return co_await signals.next().with_timeout(20ms);
  }());
  EXPECT_EQ(later.error(), std::errc::timed_out) << later.message();
}

TEST(RuntimeSignal, TimeoutBoundsTheWait) {
  SignalsRestored restored;
  EventLoop loop;
  SignalSet signals{SIGUSR1};
  auto wait = [&]() -> Task<Result<SignalInfo>> {
    co_return co_await signals.next().with_timeout(5ms);
  };
  const Result<SignalInfo> got = loop.run(wait());
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), std::errc::timed_out);
}

TEST(RuntimeSignal, DestructorUnblocksWhatItBlockedAndDropsWhatIsPending) {
  SignalsRestored restored;
  ASSERT_FALSE(blocked_in_this_thread(SIGUSR1));
  const int fds = count_open_fds();
  {
    SignalSet signals{SIGUSR1};
    EXPECT_TRUE(blocked_in_this_thread(SIGUSR1));
    EXPECT_EQ(count_open_fds(), fds + 1);
    // Pending at destruction: delivered on unblock, SIGUSR1 would end the process.
    ASSERT_EQ(::raise(SIGUSR1), 0);
    ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
    EXPECT_TRUE(pending(SIGUSR1));
  }
  EXPECT_FALSE(blocked_in_this_thread(SIGUSR1));
  EXPECT_FALSE(pending(SIGUSR1));
  EXPECT_EQ(count_open_fds(), fds);
}

TEST(RuntimeSignal, SignalsBlockedBeforeStayBlockedAndPending) {
  SignalsRestored restored;
  SignalSet::block_in_thread({SIGUSR2});
  ASSERT_TRUE(blocked_in_this_thread(SIGUSR2));
  {
    SignalSet signals{SIGUSR1, SIGUSR2};
    ASSERT_EQ(::raise(SIGUSR2), 0);
  }
  EXPECT_FALSE(blocked_in_this_thread(SIGUSR1));
  EXPECT_TRUE(blocked_in_this_thread(SIGUSR2));
  EXPECT_TRUE(pending(SIGUSR2));  // not the set's to discard; `restored` drops it
}

// A shell starts background jobs with SIGINT ignored: blocked, it is queued all the same.
TEST(RuntimeSignal, IgnoredSignalIsReceivedAndStaysIgnored) {
  SignalsRestored restored;
  ::signal(SIGUSR1, SIG_IGN);
  EventLoop loop;
  {
    SignalSet signals{SIGUSR1};
    ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
    const Result<SignalInfo> got = loop.run(next_of(signals));
    ASSERT_TRUE(got) << got.message();
    EXPECT_EQ(got->signo, SIGUSR1);
  }
  EXPECT_EQ(disposition(SIGUSR1), SIG_IGN);
}

TEST(RuntimeSignal, InvalidSignalsAreRefusedWithEinval) {
  SignalsRestored restored;
  const int fds = count_open_fds();
  for (const int bad : {SIGKILL, SIGSTOP, 0, 100000}) {
    try {
      SignalSet signals{SIGUSR1, bad};
      ADD_FAILURE() << "signal " << bad << " accepted";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::invalid_argument) << bad;
    }
  }
  EXPECT_THROW(SignalSet(std::initializer_list<int>{}), std::system_error);
  EXPECT_THROW(SignalSet::block_in_thread({SIGKILL}), std::system_error);
  EXPECT_FALSE(blocked_in_this_thread(SIGUSR1));  // a refused set blocked nothing
  EXPECT_EQ(count_open_fds(), fds);
}

TEST(RuntimeSignal, IgnoreSigpipeMakesAWriteToAClosedPipeFailWithEpipe) {
  const auto before = disposition(SIGPIPE);
  ::signal(SIGPIPE, SIG_DFL);
  ignore_sigpipe();
  EXPECT_EQ(disposition(SIGPIPE), SIG_IGN);
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  ::close(pipe_fds[0]);
  const char byte = 'x';
  EXPECT_EQ(::write(pipe_fds[1], &byte, 1), -1);
  EXPECT_EQ(errno, EPIPE);
  ::close(pipe_fds[1]);
  ::signal(SIGPIPE, before);
}

}  // namespace
}  // namespace coring
