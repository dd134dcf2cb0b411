// The user-space ring: io_uring's SQ and CQ in ordinary memory, and the "kernel"
// behind enter() and register_raw() that executes the SQEs in this process.
//
// What runs where:
// - Sockets, pipes, eventfds: a non-blocking attempt when the SQE is issued; on
//   EAGAIN the request waits on its fd, which is in the ring's epoll set
//   (edge-triggered, every direction, added at each wait: EEXIST says the fd's
//   current file is already there, so an fd number reused by a new file is never
//   mistaken for the old one). An edge runs the fd's waiters, each until its call
//   would block again. A close through the ring moves an fd's waiters to a duplicate
//   that keeps the file for them.
// - Operations that block (regular files, paths, fsync, splice; but a splice from a
//   pipe holding bytes into a socket waits for the socket, like a send): a worker
//   pool, up to min(SQ entries, 4 x CPUs) threads started on demand, whose results come back
//   through an eventfd in the epoll set. A cancel, a linked timeout or the teardown
//   interrupts a worker's call with a signal (see interrupt()).
// - Timeouts and linked timeouts: a heap of deadlines and one timerfd in the epoll
//   set, set to the earliest.
// - MSG_RING from another emulated ring: its inbox (CQEs, and registered files to
//   install), under a mutex, and the same eventfd.
// Nothing runs outside enter(): the loop's thread makes all the progress, apart from
// the workers' calls. The semantics are io_uring's (links, drain, skip-success,
// cancel by user_data/fd/opcode/any/all, multishot accept/recv/recvmsg/poll/timeout with
// F_MORE, provided-buffer rings with incremental consumption, registered files and
// buffers, send_zc's notification, MSG_RING, NODROP overflow); docs/features.md lists
// what the emulation lacks, which its probe leaves out and which fails with
// -EOPNOTSUPP.
#pragma once

#include <pthread.h>
#include <sys/uio.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "coring/ring/abi.hpp"

namespace coring::ring::detail {

// The words the kernel would share with us, laid out for Ring's pointers.
struct EmulatedWords {
  alignas(64) std::uint32_t sq_head;
  std::uint32_t sq_tail;
  std::uint32_t sq_flags;
  std::uint32_t sq_dropped;
  alignas(64) std::uint32_t cq_head;
  std::uint32_t cq_tail;
  std::uint32_t cq_overflow;
};

class Emulator {
 public:
  // Sets up a ring of `entries` SQEs (checked by the caller) as io_uring_setup(2)
  // would, filling in params; -errno on failure.
  static int create(std::uint32_t entries, Params& params, std::unique_ptr<Emulator>& out) noexcept;
  ~Emulator();
  Emulator(const Emulator&) = delete;
  Emulator& operator=(const Emulator&) = delete;

  [[nodiscard]] int fd() const noexcept { return epoll_fd_; }
  [[nodiscard]] EmulatedWords* words() const noexcept { return words_; }
  [[nodiscard]] Sqe* sqes() const noexcept { return sqes_; }
  [[nodiscard]] Cqe* cqes() const noexcept { return cqes_; }

  // io_uring_enter(2) and io_uring_register(2): the kernel's results, -errno on failure.
  int enter(std::uint32_t to_submit, std::uint32_t min_complete, std::uint32_t flags,
            const GeteventsArg* arg) noexcept;
  int register_op(RegisterOp op, const void* arg, std::uint32_t nr_args) noexcept;

  struct Request;

 private:
  Emulator() = default;

  // A doubly linked FIFO of requests through their `prev`/`next`.
  struct List {
    Request* head = nullptr;
    Request* tail = nullptr;
    [[nodiscard]] bool empty() const noexcept { return head == nullptr; }
    void push_back(Request* r) noexcept;
    void erase(Request* r) noexcept;
  };
  // The requests waiting on one fd, by what they wait for.
  struct FdWaiters {
    List readers;
    List writers;
    List pollers;
    int retry_next = -1;  // the next fd to run again (see defer_retry())
    bool retry_queued = false;
    // Requests that hold this fd: a duplicate we made when their fd was closed under
    // them (see close_fd()); closed when the last of them ends.
    std::uint32_t holders = 0;
    [[nodiscard]] bool empty() const noexcept {
      return readers.empty() && writers.empty() && pollers.empty();
    }
  };
  struct BufferGroupState {
    Buf* ring = nullptr;
    std::uint32_t mask = 0;
    std::uint16_t head = 0;
    bool incremental = false;
    bool registered = false;
  };

  // --- Requests ---
  // A request from the free list, or a new slab; nullptr without memory. `frees` asks
  // for one of the reserve when there is none else (see reserve_).
  Request* allocate(bool frees = false) noexcept;
  void release(Request* r) noexcept;
  void hash_insert(Request* r) noexcept;
  void hash_erase(Request* r) noexcept;
  [[nodiscard]] std::size_t bucket_of(std::uint64_t user_data) const noexcept;

  // --- Submission ---
  std::uint32_t submit(std::uint32_t to_submit) noexcept;
  void start_chain(Request* head) noexcept;
  void start(Request* r) noexcept;
  void issue(Request* r) noexcept;
  void complete(Request* r, std::int32_t res, std::uint32_t cqe_flags = 0) noexcept;
  // Completes every request of the chain from `first` with `res` (-ECANCELED: its
  // link failed) and releases it.
  void fail_chain(Request* first, std::int32_t res = -ECANCELED) noexcept;
  void after_completion() noexcept;
  bool fails_link(const Request& r, std::int32_t res) const noexcept;

  // --- Operations ---
  int resolve_fd(Request* r) noexcept;
  bool retry(Request* r) noexcept;  // true when the request left its fd's lists
  bool run_rw(Request* r) noexcept;
  bool run_recv(Request* r) noexcept;
  bool run_send(Request* r) noexcept;
  [[nodiscard]] bool splice_waits_for_output(const Request* r) const noexcept;
  bool run_splice(Request* r) noexcept;
  bool run_msg(Request* r) noexcept;
  bool run_recvmsg_multishot(Request* r) noexcept;
  bool run_accept(Request* r) noexcept;
  bool run_connect(Request* r) noexcept;
  bool run_poll(Request* r, std::uint32_t events) noexcept;
  void run_cancel(Request* r) noexcept;
  void run_timeout(Request* r) noexcept;
  void run_timeout_remove(Request* r) noexcept;
  void run_poll_remove(Request* r) noexcept;
  void run_msg_ring(Request* r) noexcept;
  void run_close(Request* r) noexcept;
  // Puts `fd` (ours now) in the registered table as file_index asks (a 1-based slot or
  // file_index_alloc): the slot allocated, 0, or -errno with fd closed.
  int install_direct(std::uint32_t file_index, int fd) noexcept;
  // Sets registered slot `slot` to `fd` (-1: empty), closing what it held, and moves the
  // allocation hint as the kernel's table does.
  void set_file(std::uint32_t slot, int fd) noexcept;
  void run_msg_ring_fd(Request* r, int target_fd) noexcept;
  int cancel_request(Request* r) noexcept;
  int cancel_matching(const Sqe& cancel, const Request* self, bool all, int& last) noexcept;
  [[nodiscard]] bool matches(const Request& r, const Sqe& cancel) const noexcept;
  bool select_buffer(Request* r, std::uint16_t group, std::uint32_t want, iovec& out,
                     std::uint16_t& bid) noexcept;
  std::uint32_t commit_buffer(std::uint16_t group, std::uint32_t used) noexcept;

  // --- Waiting on fds ---
  enum class Dir : std::uint8_t { none, read, write, poll };
  // Adds r to its fd's waiters; -errno when the fd cannot be polled (EPERM: a regular
  // file, which the caller hands to a worker instead).
  int park(Request* r, Dir dir) noexcept;
  // After an attempt that would block: r waits on its fd, or fails if it cannot.
  void wait_on(Request* r, Dir dir) noexcept;
  // Grows fds_ to hold `fd`; false without memory.
  bool track(int fd) noexcept;
  // Closes an fd of ours or the program's (a close request, a registered slot replaced):
  // requests waiting on it keep its file, as the kernel's hold a reference.
  int close_fd(int fd) noexcept;
  void keep_file(int fd) noexcept;
  void drop_hold(Request* r) noexcept;
  // Completes every waiter of `w` with `res`.
  void fail_waiters(FdWaiters& w, std::int32_t res) noexcept;
  void on_fd_event(int fd, std::uint32_t events) noexcept;
  void run_waiters(List& list) noexcept;
  void defer_retry(Request* r) noexcept;

  // --- Timers ---
  void timer_insert(Request* r) noexcept;
  void timer_erase(Request* r) noexcept;
  void run_timers() noexcept;
  void arm_timerfd() noexcept;
  void fire_timer(Request* r) noexcept;
  static std::uint64_t now_ns() noexcept;
  static std::uint64_t deadline_of(const KernelTimespec& ts, std::uint32_t timeout_flags) noexcept;

  // --- Workers ---
  struct Worker {
    std::thread thread;
    pthread_t handle{};
    Request* current = nullptr;  // what it runs; under mutex_
  };
  void to_worker(Request* r) noexcept;
  void worker_main(Worker* self) noexcept;
  void drain_workers() noexcept;
  static std::int32_t run_blocking(Request* r) noexcept;
  // Interrupts the call a worker makes for r (the kernel signals its io-wq worker the
  // same way): the call fails with EINTR, having done nothing, and r completes with
  // -ECANCELED (a call that did part of its work returns that). Signalled again
  // while r runs, so that a signal that came just before the call began is not lost.
  void interrupt(Request* r) noexcept;
  void signal_worker(Request* r) noexcept;  // with mutex_ held

  // --- Completions ---
  bool post(std::uint64_t user_data, std::int32_t res, std::uint32_t flags) noexcept;
  void flush_overflow() noexcept;
  [[nodiscard]] std::uint32_t cq_ready() const noexcept;
  void set_flag(std::uint32_t flag) noexcept;
  void clear_flag(std::uint32_t flag) noexcept;
  void signal_eventfd() noexcept;

  // --- Events ---
  // Processes what is ready; waits up to `timeout_ns` (0: not at all, -1: for ever) when
  // `wait` and nothing else is.
  int poll_events(std::int64_t timeout_ns, const GeteventsArg* arg) noexcept;
  void process_pending() noexcept;
  void drain_inbox() noexcept;
  // Completes the request `request` of the ring `sender` with `res` from another thread:
  // nothing happens if that ring is gone.
  static void reply(std::uint64_t sender, Request* request, std::int32_t res) noexcept;
  void wake() noexcept;  // with mutex_ held
  void count_timeouts_check() noexcept;

  // Memory shared with Ring.
  void* memory_ = nullptr;
  std::size_t memory_size_ = 0;
  EmulatedWords* words_ = nullptr;
  Sqe* sqes_ = nullptr;
  Cqe* cqes_ = nullptr;
  std::uint32_t sq_entries_ = 0;
  std::uint32_t cq_entries_ = 0;
  std::uint32_t setup_flags_ = 0;

  std::uint64_t id_ = 0;  // unique for the process's lifetime, unlike fds and addresses
  int epoll_fd_ = -1;
  int event_fd_ = -1;  // workers and MSG_RING senders wake the loop through it
  int timer_fd_ = -1;
  std::uint64_t timer_armed_ = 0;  // the timerfd's deadline, 0 when disarmed

  // Requests: slabs that never move, a free list, a hash by user_data, all live ones.
  std::vector<std::unique_ptr<Request[]>> slabs_;
  Request* free_ = nullptr;
  // Requests kept back for the SQEs that give resources back (a close, a cancel, a
  // shutdown, ...): when memory has run out for the others, these still run, so that a
  // program out of memory can close what it holds and recover. Each completes at once
  // and its request refills the reserve first.
  static constexpr std::uint32_t reserved_requests = 8;
  Request* reserve_ = nullptr;
  std::uint32_t reserved_ = 0;
  std::vector<Request*> buckets_;
  std::uint32_t live_ = 0;
  Request* all_ = nullptr;  // through all_prev/all_next

  // Chains being read from the SQ, and drain.
  List drain_queue_;
  std::uint32_t drain_queued_ = 0;  // requests in drain_queue_'s chains
  bool drain_blocks_ = false;       // a drained request runs: the queue waits for it

  std::deque<FdWaiters> fds_;  // by fd; a deque, so that growing it moves no list
  // The edge whose waiters run now: its fd (-1 outside on_fd_event()) and events.
  int edge_fd_ = -1;
  std::uint32_t edge_events_ = 0;
  // Fds whose readers run again before the next wait, through FdWaiters::retry_next.
  int retry_head_ = -1;
  int retry_tail_ = -1;
  std::uint32_t cancel_walk_ = 0;
  std::vector<Cqe> inbox_taken_;  // the inbox being posted, outside the mutex
  std::vector<Request*> timers_;  // a binary min-heap on deadline
  std::vector<Request*> count_timeouts_;
  std::uint64_t posted_ = 0;  // CQEs posted since setup, for count timeouts

  std::deque<Cqe> overflow_;
  bool lost_cqes_ = false;  // one was dropped for want of memory: the next enter says EBADR
  std::uint32_t enters_since_poll_ = 0;
  int registered_eventfd_ = -1;
  bool eventfd_async_only_ = false;
  std::uint64_t signalled_at_ = 0;  // posted_ when the registered eventfd was last written

  std::vector<int> files_;  // registered files: real fds we own, -1 for empty slots
  std::uint32_t alloc_begin_ = 0;
  std::uint32_t alloc_end_ = 0;
  std::uint32_t alloc_hint_ = 0;  // where file_index_alloc looks first
  std::vector<iovec> buffers_;    // registered buffers
  std::vector<BufferGroupState> groups_;
  std::uint32_t max_workers_ = 0;

  // Shared with the workers and with other rings' MSG_RING; under mutex_.
  std::mutex mutex_;
  std::condition_variable work_ready_;
  List work_;               // requests for the workers
  List done_;               // their results, for the loop
  std::vector<Cqe> inbox_;  // CQEs other rings sent us
  // A registered file another ring sends us (MSG_RING's send_fd): our copy of it, where
  // it goes, and the sender's request, which completes with what the install gave.
  struct PassedFile {
    int fd;
    std::uint32_t file_index;
    bool skip_cqe;
    std::uint64_t user_data;
    std::uint64_t sender;  // the sending ring's id_
    Request* request;
  };
  std::vector<PassedFile> passed_;
  std::vector<PassedFile> passed_taken_;  // being installed, outside the mutex
  std::vector<std::unique_ptr<Worker>> workers_;
  std::uint32_t idle_workers_ = 0;
  std::uint32_t live_workers_ = 0;  // started and not yet returned
  std::condition_variable worker_exited_;
  std::vector<Request*> interrupting_;  // interrupted, not yet back; the loop's
  bool stopping_ = false;
  bool wake_written_ = false;  // event_fd_ holds a wake the loop has not read
};

}  // namespace coring::ring::detail
