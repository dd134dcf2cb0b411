// The kernel's io_uring ABI, written out by us.
//
// This is the only file in coring that knows the kernel's struct layouts and
// constants. We do not include <linux/io_uring.h>: Debian 12 ships a 6.1-era
// copy, and we want to build against any installed headers while using
// features up to the 6.18 kernel. Every struct is pinned by static_asserts on
// its size and on the offset of each field we use; tests/ring/abi_test.cpp
// compares every item that the installed <linux/io_uring.h> and <linux/futex.h>
// also define.
//
// Names: the kernel's IORING_OP_READV becomes Op::readv, IORING_SETUP_SQPOLL
// becomes setup::sqpoll, and so on. We cannot reuse the kernel's macro names,
// because a translation unit that includes both headers would see ours
// replaced by the preprocessor.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace coring::ring {

static_assert(std::endian::native == std::endian::little,
              "the SQE sub-field helpers below assume a little-endian machine");

// --- Operations (enum io_uring_op) -----------------------------------------
enum class Op : std::uint8_t {
  nop = 0,
  readv = 1,
  writev = 2,
  fsync = 3,
  read_fixed = 4,
  write_fixed = 5,
  poll_add = 6,
  poll_remove = 7,
  sync_file_range = 8,
  sendmsg = 9,
  recvmsg = 10,
  timeout = 11,
  timeout_remove = 12,
  accept = 13,
  async_cancel = 14,
  link_timeout = 15,
  connect = 16,
  fallocate = 17,
  openat = 18,
  close = 19,
  files_update = 20,
  statx = 21,
  read = 22,
  write = 23,
  fadvise = 24,
  madvise = 25,
  send = 26,
  recv = 27,
  openat2 = 28,
  epoll_ctl = 29,
  splice = 30,
  provide_buffers = 31,
  remove_buffers = 32,
  tee = 33,
  shutdown = 34,
  renameat = 35,
  unlinkat = 36,
  mkdirat = 37,
  symlinkat = 38,
  linkat = 39,
  msg_ring = 40,
  fsetxattr = 41,
  setxattr = 42,
  fgetxattr = 43,
  getxattr = 44,
  socket = 45,
  uring_cmd = 46,
  send_zc = 47,
  sendmsg_zc = 48,
  read_multishot = 49,    // 6.7
  waitid = 50,            // 6.7
  futex_wait = 51,        // 6.7
  futex_wake = 52,        // 6.7
  futex_waitv = 53,       // 6.7
  fixed_fd_install = 54,  // 6.8
  ftruncate = 55,         // 6.9
  bind = 56,              // 6.11
  listen = 57,            // 6.11
  recv_zc = 58,           // 6.15
  epoll_wait = 59,        // 6.15
  readv_fixed = 60,       // 6.15
  writev_fixed = 61,      // 6.15
  pipe = 62,              // 6.16
  last = 63,              // IORING_OP_LAST on 6.18: one past the newest opcode
};

// --- SQE flags (sqe->flags) ----------------------------------------------------
namespace sqe_flags {
inline constexpr std::uint8_t fixed_file = 1U << 0;   // fd is an index into the registered files
inline constexpr std::uint8_t io_drain = 1U << 1;     // issue after everything in flight
inline constexpr std::uint8_t io_link = 1U << 2;      // the next SQE starts when this one succeeds
inline constexpr std::uint8_t io_hardlink = 1U << 3;  // like io_link, but not severed by failure
inline constexpr std::uint8_t async = 1U << 4;        // always go async (io-wq)
inline constexpr std::uint8_t buffer_select = 1U << 5;     // pick a provided buffer from buf_group
inline constexpr std::uint8_t cqe_skip_success = 1U << 6;  // post no CQE when it succeeds
}  // namespace sqe_flags

// --- io_uring_setup(2) flags (params.flags) -----------------------------------------
namespace setup {
inline constexpr std::uint32_t iopoll = 1U << 0;
inline constexpr std::uint32_t sqpoll = 1U << 1;
inline constexpr std::uint32_t sq_aff = 1U << 2;
inline constexpr std::uint32_t cqsize = 1U << 3;
inline constexpr std::uint32_t clamp = 1U << 4;
inline constexpr std::uint32_t attach_wq = 1U << 5;
inline constexpr std::uint32_t r_disabled = 1U << 6;
inline constexpr std::uint32_t submit_all = 1U << 7;
inline constexpr std::uint32_t coop_taskrun = 1U << 8;
inline constexpr std::uint32_t taskrun_flag = 1U << 9;
inline constexpr std::uint32_t sqe128 = 1U << 10;
inline constexpr std::uint32_t cqe32 = 1U << 11;
inline constexpr std::uint32_t single_issuer = 1U << 12;
inline constexpr std::uint32_t defer_taskrun = 1U << 13;
inline constexpr std::uint32_t no_mmap = 1U << 14;             // 6.5
inline constexpr std::uint32_t registered_fd_only = 1U << 15;  // 6.5
inline constexpr std::uint32_t no_sqarray = 1U << 16;          // 6.6
inline constexpr std::uint32_t hybrid_iopoll = 1U << 17;       // 6.13
inline constexpr std::uint32_t cqe_mixed = 1U << 18;           // 6.18
}  // namespace setup

// --- io_uring_enter(2) flags ---------------------------------------------------------
namespace enter_flags {
inline constexpr std::uint32_t getevents = 1U << 0;
inline constexpr std::uint32_t sq_wakeup = 1U << 1;
inline constexpr std::uint32_t sq_wait = 1U << 2;
inline constexpr std::uint32_t ext_arg = 1U << 3;
inline constexpr std::uint32_t registered_ring = 1U << 4;
inline constexpr std::uint32_t abs_timer = 1U << 5;    // 6.12
inline constexpr std::uint32_t ext_arg_reg = 1U << 6;  // 6.13
inline constexpr std::uint32_t no_iowait = 1U << 7;    // 6.15
}  // namespace enter_flags

// --- params.features -------------------------------------------------------------------
namespace feat {
inline constexpr std::uint32_t single_mmap = 1U << 0;
inline constexpr std::uint32_t nodrop = 1U << 1;
inline constexpr std::uint32_t submit_stable = 1U << 2;
inline constexpr std::uint32_t rw_cur_pos = 1U << 3;
inline constexpr std::uint32_t cur_personality = 1U << 4;
inline constexpr std::uint32_t fast_poll = 1U << 5;
inline constexpr std::uint32_t poll_32bits = 1U << 6;
inline constexpr std::uint32_t sqpoll_nonfixed = 1U << 7;
inline constexpr std::uint32_t ext_arg = 1U << 8;
inline constexpr std::uint32_t native_workers = 1U << 9;
inline constexpr std::uint32_t rsrc_tags = 1U << 10;
inline constexpr std::uint32_t cqe_skip = 1U << 11;
inline constexpr std::uint32_t linked_file = 1U << 12;
inline constexpr std::uint32_t reg_reg_ring = 1U << 13;     // 6.3
inline constexpr std::uint32_t recvsend_bundle = 1U << 14;  // 6.10
inline constexpr std::uint32_t min_timeout = 1U << 15;      // 6.12
inline constexpr std::uint32_t rw_attr = 1U << 16;          // 6.14
inline constexpr std::uint32_t no_iowait = 1U << 17;        // 6.15
}  // namespace feat

// --- SQ ring flags (*sq_off.flags) and CQ ring flags (*cq_off.flags) --------------------------
namespace sq_flags {
inline constexpr std::uint32_t need_wakeup = 1U << 0;  // SQPOLL thread sleeps: enter with sq_wakeup
inline constexpr std::uint32_t cq_overflow = 1U << 1;  // CQEs wait in the kernel's overflow list
inline constexpr std::uint32_t taskrun = 1U << 2;      // task work is pending (taskrun_flag)
}  // namespace sq_flags
namespace cq_flags {
inline constexpr std::uint32_t eventfd_disabled = 1U << 0;
}  // namespace cq_flags

// --- CQE flags (cqe->flags) -------------------------------------------------------------------
namespace cqe_flags {
inline constexpr std::uint32_t buffer = 1U << 0;         // upper 16 bits hold the buffer id
inline constexpr std::uint32_t more = 1U << 1;           // the request will post more CQEs
inline constexpr std::uint32_t sock_nonempty = 1U << 2;  // more data was waiting in the socket
inline constexpr std::uint32_t notif = 1U << 3;          // a zero-copy send's notification
inline constexpr std::uint32_t buf_more = 1U << 4;  // incremental buffer: still owned by kernel
inline constexpr std::uint32_t skip = 1U << 5;      // 6.18 CQE_MIXED: padding CQE, ignore
inline constexpr std::uint32_t cqe32 = 1U << 15;    // 6.18 CQE_MIXED: this CQE is 32 bytes
inline constexpr unsigned buffer_shift = 16;
}  // namespace cqe_flags

// --- mmap offsets ------------------------------------------------------------------------------
namespace mmap_offset {
inline constexpr std::uint64_t sq_ring = 0ULL;
inline constexpr std::uint64_t cq_ring = 0x8000000ULL;
inline constexpr std::uint64_t sqes = 0x10000000ULL;
inline constexpr std::uint64_t pbuf_ring = 0x80000000ULL;
inline constexpr unsigned pbuf_shift = 16;
inline constexpr std::uint64_t mmap_mask = 0xf8000000ULL;
}  // namespace mmap_offset

// --- per-operation flags -------------------------------------------------------------------------
inline constexpr std::uint32_t fsync_datasync = 1U << 0;

namespace timeout_flags {
inline constexpr std::uint32_t abs = 1U << 0;
inline constexpr std::uint32_t update = 1U << 1;
inline constexpr std::uint32_t boottime = 1U << 2;
inline constexpr std::uint32_t realtime = 1U << 3;
inline constexpr std::uint32_t link_timeout_update = 1U << 4;
inline constexpr std::uint32_t etime_success = 1U << 5;
inline constexpr std::uint32_t multishot = 1U << 6;
inline constexpr std::uint32_t clock_mask = boottime | realtime;
inline constexpr std::uint32_t update_mask = update | link_timeout_update;
}  // namespace timeout_flags

// POLL_ADD flags live in sqe->len.
namespace poll_flags {
inline constexpr std::uint32_t add_multi = 1U << 0;
inline constexpr std::uint32_t update_events = 1U << 1;
inline constexpr std::uint32_t update_user_data = 1U << 2;
inline constexpr std::uint32_t add_level = 1U << 3;
}  // namespace poll_flags

namespace cancel_flags {
inline constexpr std::uint32_t all = 1U << 0;
inline constexpr std::uint32_t fd = 1U << 1;
inline constexpr std::uint32_t any = 1U << 2;
inline constexpr std::uint32_t fd_fixed = 1U << 3;
inline constexpr std::uint32_t userdata = 1U << 4;
inline constexpr std::uint32_t op = 1U << 5;
}  // namespace cancel_flags

// send/recv flags live in sqe->ioprio.
namespace recvsend_flags {
inline constexpr std::uint16_t poll_first = 1U << 0;
inline constexpr std::uint16_t recv_multishot = 1U << 1;
inline constexpr std::uint16_t fixed_buf = 1U << 2;
inline constexpr std::uint16_t send_zc_report_usage = 1U << 3;
inline constexpr std::uint16_t bundle = 1U << 4;
inline constexpr std::uint16_t send_vectorized = 1U << 5;  // 6.17
}  // namespace recvsend_flags
inline constexpr std::uint32_t notif_usage_zc_copied = 1U << 31;

// accept flags live in sqe->ioprio.
namespace accept_flags {
inline constexpr std::uint16_t multishot = 1U << 0;
inline constexpr std::uint16_t dontwait = 1U << 1;
inline constexpr std::uint16_t poll_first = 1U << 2;
}  // namespace accept_flags

// MSG_RING: the command lives in sqe->addr, flags in sqe->op_flags.
namespace msg_ring {
inline constexpr std::uint64_t data = 0;
inline constexpr std::uint64_t send_fd = 1;
inline constexpr std::uint32_t cqe_skip = 1U << 0;
inline constexpr std::uint32_t flags_pass = 1U << 1;
}  // namespace msg_ring

inline constexpr std::uint32_t fixed_fd_no_cloexec = 1U << 0;
namespace nop_flags {
inline constexpr std::uint32_t inject_result = 1U << 0;  // res = sqe->len
inline constexpr std::uint32_t file = 1U << 1;
inline constexpr std::uint32_t fixed_file = 1U << 2;
inline constexpr std::uint32_t fixed_buffer = 1U << 3;
inline constexpr std::uint32_t tw = 1U << 4;     // 6.17: complete through task work
inline constexpr std::uint32_t cqe32 = 1U << 5;  // 6.18: post a 32-byte CQE on a CQE_MIXED ring
}  // namespace nop_flags
namespace uring_cmd_flags {
inline constexpr std::uint32_t fixed = 1U << 0;
inline constexpr std::uint32_t multishot = 1U << 1;  // 6.18
}  // namespace uring_cmd_flags
inline constexpr std::uint32_t splice_f_fd_in_fixed = 1U << 31;

// Futexes (Op::futex_wait, futex_wake, futex_waitv; 6.7) take the futex2 flags of
// <linux/futex.h>: in sqe->fd for a wait or a wake, in each FutexWaitv for a waitv. The
// size field says how wide the futex word is; 6.18 accepts only size_u32.
namespace futex2 {
inline constexpr std::uint32_t size_u8 = 0x00;
inline constexpr std::uint32_t size_u16 = 0x01;
inline constexpr std::uint32_t size_u32 = 0x02;
inline constexpr std::uint32_t size_u64 = 0x03;
inline constexpr std::uint32_t numa = 0x04;
inline constexpr std::uint32_t private_flag = 0x80;  // FUTEX2_PRIVATE: this process's futexes only
inline constexpr std::uint32_t size_mask = 0x03;
}  // namespace futex2
// The wait and wake mask that matches every waiter (FUTEX_BITSET_MATCH_ANY).
inline constexpr std::uint64_t futex_bitset_match_any = 0xffffffffULL;
// The most futexes one waitv may wait on (FUTEX_WAITV_MAX).
inline constexpr std::uint32_t futex_waitv_max = 128;
// Ask the kernel to choose a free slot of the registered file table.
inline constexpr std::uint32_t file_index_alloc = ~0U;
inline constexpr int register_files_skip = -2;
inline constexpr std::uint32_t rsrc_register_sparse = 1U << 0;

// Commands for Op::uring_cmd on a socket (sqe cmd_op).
enum class SocketOp : std::uint32_t {
  siocinq = 0,
  siocoutq = 1,
  getsockopt = 2,
  setsockopt = 3,
  tx_timestamp = 4,  // 6.17
};

// --- io_uring_register(2) opcodes ---------------------------------------------------------------
enum class RegisterOp : std::uint32_t {
  register_buffers = 0,
  unregister_buffers = 1,
  register_files = 2,
  unregister_files = 3,
  register_eventfd = 4,
  unregister_eventfd = 5,
  register_files_update = 6,
  register_eventfd_async = 7,
  register_probe = 8,
  register_personality = 9,
  unregister_personality = 10,
  register_restrictions = 11,
  register_enable_rings = 12,
  register_files2 = 13,
  register_files_update2 = 14,
  register_buffers2 = 15,
  register_buffers_update = 16,
  register_iowq_aff = 17,
  unregister_iowq_aff = 18,
  register_iowq_max_workers = 19,
  register_ring_fds = 20,
  unregister_ring_fds = 21,
  register_pbuf_ring = 22,
  unregister_pbuf_ring = 23,
  register_sync_cancel = 24,
  register_file_alloc_range = 25,
  register_pbuf_status = 26,
  register_napi = 27,
  unregister_napi = 28,
  register_clock = 29,
  register_clone_buffers = 30,
  register_send_msg_ring = 31,
  register_zcrx_ifq = 32,
  register_resize_rings = 33,
  register_mem_region = 34,
  register_query = 35,  // 6.18
  last = 36,
};
// Or-ed into the opcode: the fd argument is an index into the registered rings.
inline constexpr std::uint32_t register_use_registered_ring = 1U << 31;

enum class RestrictionOp : std::uint16_t {
  register_op = 0,         // allow an io_uring_register(2) opcode
  sqe_op = 1,              // allow an SQE opcode
  sqe_flags_allowed = 2,   // allow these SQE flags
  sqe_flags_required = 3,  // require these SQE flags
};

// --- Structures ---------------------------------------------------------------------------------

struct KernelTimespec {
  std::int64_t tv_sec = 0;
  std::int64_t tv_nsec = 0;
};
static_assert(sizeof(KernelTimespec) == 16);

// struct open_how of <linux/openat2.h> (5.6): what Op::openat2 reads through the SQE's
// off, its size in len.
struct OpenHow {
  std::uint64_t flags = 0;    // O_* flags
  std::uint64_t mode = 0;     // with O_CREAT or O_TMPFILE only (EINVAL otherwise)
  std::uint64_t resolve = 0;  // resolve_flags
};
static_assert(sizeof(OpenHow) == 24);  // OPEN_HOW_SIZE_VER0
static_assert(offsetof(OpenHow, mode) == 8 && offsetof(OpenHow, resolve) == 16);

// RESOLVE_* of <linux/openat2.h>: how openat2 may walk the path.
namespace resolve_flags {
inline constexpr std::uint64_t no_xdev = 0x01;        // not across mount points
inline constexpr std::uint64_t no_magiclinks = 0x02;  // not through /proc/<pid>/fd and kin
inline constexpr std::uint64_t no_symlinks = 0x04;    // through no symlink at all
inline constexpr std::uint64_t beneath = 0x08;        // never out of the directory (EXDEV)
inline constexpr std::uint64_t in_root = 0x10;        // as if the directory were /
inline constexpr std::uint64_t cached = 0x20;         // from the dentry cache only (5.12)
}  // namespace resolve_flags

// struct io_uring_sqe. The kernel's unions are flattened to one name per slot,
// because anonymous structs inside unions are not ISO C++; the aliases are:
//   off       : off, addr2, {cmd_op (low 32), __pad1}
//   addr      : addr, splice_off_in, {level (low 32), optname (high 32)}
//   op_flags  : rw_flags, fsync_flags, poll32_events, msg_flags, timeout_flags, accept_flags,
//               cancel_flags, open_flags, statx_flags, splice_flags, rename_flags, unlink_flags,
//               hardlink_flags, msg_ring_flags, uring_cmd_flags, waitid_flags, futex_flags,
//               install_fd_flags, nop_flags, pipe_flags
//   buf_index : buf_index, buf_group
//   file_index: splice_fd_in, file_index, optlen, zcrx_ifq_idx, {addr_len (low 16), __pad3}
//   addr3     : addr3, optval, attr_ptr; pad2: attr_type_mask
struct Sqe {
  std::uint8_t opcode;
  std::uint8_t flags;
  std::uint16_t ioprio;
  std::int32_t fd;
  std::uint64_t off;
  std::uint64_t addr;
  std::uint32_t len;
  std::uint32_t op_flags;
  std::uint64_t user_data;
  std::uint16_t buf_index;
  std::uint16_t personality;
  std::uint32_t file_index;
  std::uint64_t addr3;
  std::uint64_t pad2;
};
static_assert(sizeof(Sqe) == 64);
static_assert(offsetof(Sqe, opcode) == 0);
static_assert(offsetof(Sqe, flags) == 1);
static_assert(offsetof(Sqe, ioprio) == 2);
static_assert(offsetof(Sqe, fd) == 4);
static_assert(offsetof(Sqe, off) == 8);
static_assert(offsetof(Sqe, addr) == 16);
static_assert(offsetof(Sqe, len) == 24);
static_assert(offsetof(Sqe, op_flags) == 28);
static_assert(offsetof(Sqe, user_data) == 32);
static_assert(offsetof(Sqe, buf_index) == 40);
static_assert(offsetof(Sqe, personality) == 42);
static_assert(offsetof(Sqe, file_index) == 44);
static_assert(offsetof(Sqe, addr3) == 48);
static_assert(offsetof(Sqe, pad2) == 56);

// struct io_uring_cqe.
struct Cqe {
  std::uint64_t user_data;
  std::int32_t res;
  std::uint32_t flags;

  [[nodiscard]] bool has_more() const noexcept { return (flags & cqe_flags::more) != 0; }
  [[nodiscard]] bool has_buffer() const noexcept { return (flags & cqe_flags::buffer) != 0; }
  // The provided buffer's id; meaningful only when has_buffer().
  [[nodiscard]] std::uint16_t buffer_id() const noexcept {
    return static_cast<std::uint16_t>(flags >> cqe_flags::buffer_shift);
  }
  // The positive errno of a failed operation, 0 on success.
  [[nodiscard]] int error() const noexcept { return res < 0 ? -res : 0; }
};
static_assert(sizeof(Cqe) == 16);
static_assert(offsetof(Cqe, user_data) == 0);
static_assert(offsetof(Cqe, res) == 8);
static_assert(offsetof(Cqe, flags) == 12);

// The 32-byte CQE of a ring set up with setup::cqe32.
struct Cqe32 {
  Cqe cqe;
  std::uint64_t big_cqe[2];
};
static_assert(sizeof(Cqe32) == 32);
static_assert(offsetof(Cqe32, big_cqe) == 16);

struct SqringOffsets {
  std::uint32_t head;
  std::uint32_t tail;
  std::uint32_t ring_mask;
  std::uint32_t ring_entries;
  std::uint32_t flags;
  std::uint32_t dropped;
  std::uint32_t array;
  std::uint32_t resv1;
  std::uint64_t user_addr;
};
static_assert(sizeof(SqringOffsets) == 40);
static_assert(offsetof(SqringOffsets, array) == 24);
static_assert(offsetof(SqringOffsets, user_addr) == 32);

struct CqringOffsets {
  std::uint32_t head;
  std::uint32_t tail;
  std::uint32_t ring_mask;
  std::uint32_t ring_entries;
  std::uint32_t overflow;
  std::uint32_t cqes;
  std::uint32_t flags;
  std::uint32_t resv1;
  std::uint64_t user_addr;
};
static_assert(sizeof(CqringOffsets) == 40);
static_assert(offsetof(CqringOffsets, cqes) == 20);
static_assert(offsetof(CqringOffsets, flags) == 24);
static_assert(offsetof(CqringOffsets, user_addr) == 32);

// struct io_uring_params: passed to io_uring_setup(2) and filled in by it.
struct Params {
  std::uint32_t sq_entries = 0;
  std::uint32_t cq_entries = 0;
  std::uint32_t flags = 0;
  std::uint32_t sq_thread_cpu = 0;
  std::uint32_t sq_thread_idle = 0;  // milliseconds
  std::uint32_t features = 0;
  std::uint32_t wq_fd = 0;
  std::uint32_t resv[3] = {};
  SqringOffsets sq_off = {};
  CqringOffsets cq_off = {};
};
static_assert(sizeof(Params) == 120);
static_assert(offsetof(Params, sq_entries) == 0);
static_assert(offsetof(Params, cq_entries) == 4);
static_assert(offsetof(Params, flags) == 8);
static_assert(offsetof(Params, sq_thread_cpu) == 12);
static_assert(offsetof(Params, sq_thread_idle) == 16);
static_assert(offsetof(Params, features) == 20);
static_assert(offsetof(Params, wq_fd) == 24);
static_assert(offsetof(Params, resv) == 28);
static_assert(offsetof(Params, sq_off) == 40);
static_assert(offsetof(Params, cq_off) == 80);

// struct io_uring_files_update (IORING_REGISTER_FILES_UPDATE).
struct FilesUpdate {
  std::uint32_t offset = 0;
  std::uint32_t resv = 0;
  std::uint64_t fds = 0;  // pointer to int[]
};
static_assert(sizeof(FilesUpdate) == 16);
static_assert(offsetof(FilesUpdate, fds) == 8);

// struct io_uring_rsrc_register (IORING_REGISTER_FILES2 / BUFFERS2).
struct RsrcRegister {
  std::uint32_t nr = 0;
  std::uint32_t flags = 0;
  std::uint64_t resv2 = 0;
  std::uint64_t data = 0;
  std::uint64_t tags = 0;
};
static_assert(sizeof(RsrcRegister) == 32);
static_assert(offsetof(RsrcRegister, flags) == 4);
static_assert(offsetof(RsrcRegister, data) == 16);
static_assert(offsetof(RsrcRegister, tags) == 24);

// struct io_uring_rsrc_update (IORING_REGISTER_RING_FDS and friends).
struct RsrcUpdate {
  std::uint32_t offset = 0;
  std::uint32_t resv = 0;
  std::uint64_t data = 0;
};
static_assert(sizeof(RsrcUpdate) == 16);
static_assert(offsetof(RsrcUpdate, data) == 8);

// struct io_uring_rsrc_update2 (IORING_REGISTER_FILES_UPDATE2 / BUFFERS_UPDATE).
struct RsrcUpdate2 {
  std::uint32_t offset = 0;
  std::uint32_t resv = 0;
  std::uint64_t data = 0;
  std::uint64_t tags = 0;
  std::uint32_t nr = 0;
  std::uint32_t resv2 = 0;
};
static_assert(sizeof(RsrcUpdate2) == 32);
static_assert(offsetof(RsrcUpdate2, tags) == 16);
static_assert(offsetof(RsrcUpdate2, nr) == 24);

// struct io_uring_probe_op.
inline constexpr std::uint16_t probe_op_supported = 1U << 0;
struct ProbeOp {
  std::uint8_t op;
  std::uint8_t resv;
  std::uint16_t flags;
  std::uint32_t resv2;
};
static_assert(sizeof(ProbeOp) == 8);
static_assert(offsetof(ProbeOp, flags) == 2);

// struct io_uring_probe header; the kernel's flexible ops[] array follows it.
struct ProbeHeader {
  std::uint8_t last_op;
  std::uint8_t ops_len;
  std::uint16_t resv;
  std::uint32_t resv2[3];
};
static_assert(sizeof(ProbeHeader) == 16);
static_assert(offsetof(ProbeHeader, ops_len) == 1);

// struct io_uring_restriction.
struct Restriction {
  std::uint16_t opcode = 0;  // a RestrictionOp
  std::uint8_t arg = 0;      // register_op, sqe_op or sqe_flags, by opcode
  std::uint8_t resv = 0;
  std::uint32_t resv2[3] = {};
};
static_assert(sizeof(Restriction) == 16);
static_assert(offsetof(Restriction, arg) == 2);

// struct io_uring_buf: one entry of a provided-buffer ring.
struct Buf {
  std::uint64_t addr;
  std::uint32_t len;
  std::uint16_t bid;
  std::uint16_t resv;
};
static_assert(sizeof(Buf) == 16);
static_assert(offsetof(Buf, len) == 8);
static_assert(offsetof(Buf, bid) == 12);

// struct io_uring_buf_ring overlays the first io_uring_buf: its tail shares the
// slot of bufs[0].resv, so the first entry stays usable.
inline constexpr std::size_t buf_ring_tail_offset = 14;
static_assert(buf_ring_tail_offset == offsetof(Buf, resv));

namespace pbuf_flags {
inline constexpr std::uint16_t mmap = 1U << 0;  // the kernel allocates the ring; mmap it
inline constexpr std::uint16_t inc = 1U << 1;   // incremental consumption (6.12)
}  // namespace pbuf_flags

// struct io_uring_buf_reg (IORING_REGISTER_PBUF_RING).
struct BufReg {
  std::uint64_t ring_addr = 0;
  std::uint32_t ring_entries = 0;
  std::uint16_t bgid = 0;
  std::uint16_t flags = 0;
  std::uint64_t resv[3] = {};
};
static_assert(sizeof(BufReg) == 40);
static_assert(offsetof(BufReg, ring_entries) == 8);
static_assert(offsetof(BufReg, bgid) == 12);
static_assert(offsetof(BufReg, flags) == 14);

// struct io_uring_buf_status (IORING_REGISTER_PBUF_STATUS).
struct BufStatus {
  std::uint32_t buf_group = 0;
  std::uint32_t head = 0;
  std::uint32_t resv[8] = {};
};
static_assert(sizeof(BufStatus) == 40);

// struct io_uring_napi (IORING_REGISTER_NAPI).
namespace napi_op {
inline constexpr std::uint8_t register_op = 0;
inline constexpr std::uint8_t static_add_id = 1;
inline constexpr std::uint8_t static_del_id = 2;
}  // namespace napi_op
namespace napi_strategy {
inline constexpr std::uint32_t dynamic = 0;
inline constexpr std::uint32_t static_ids = 1;
}  // namespace napi_strategy
struct Napi {
  std::uint32_t busy_poll_to = 0;  // microseconds
  std::uint8_t prefer_busy_poll = 0;
  std::uint8_t opcode = 0;  // napi_op, 6.13
  std::uint8_t pad[2] = {};
  std::uint32_t op_param = 0;  // strategy or NAPI id, 6.13
  std::uint32_t resv = 0;
};
static_assert(sizeof(Napi) == 16);
static_assert(offsetof(Napi, prefer_busy_poll) == 4);
static_assert(offsetof(Napi, opcode) == 5);
static_assert(offsetof(Napi, op_param) == 8);

// struct io_uring_getevents_arg (enter_flags::ext_arg).
struct GeteventsArg {
  std::uint64_t sigmask = 0;
  std::uint32_t sigmask_sz = 0;
  std::uint32_t min_wait_usec = 0;  // feat::min_timeout
  std::uint64_t ts = 0;             // pointer to KernelTimespec
};
static_assert(sizeof(GeteventsArg) == 24);
static_assert(offsetof(GeteventsArg, sigmask_sz) == 8);
static_assert(offsetof(GeteventsArg, min_wait_usec) == 12);
static_assert(offsetof(GeteventsArg, ts) == 16);

// struct io_uring_sync_cancel_reg (IORING_REGISTER_SYNC_CANCEL).
struct SyncCancelReg {
  std::uint64_t addr = 0;  // user_data to match
  std::int32_t fd = 0;
  std::uint32_t flags = 0;            // cancel_flags
  KernelTimespec timeout = {-1, -1};  // {-1, -1}: wait for ever
  std::uint8_t opcode = 0;
  std::uint8_t pad[7] = {};
  std::uint64_t pad2[3] = {};
};
static_assert(sizeof(SyncCancelReg) == 64);
static_assert(offsetof(SyncCancelReg, fd) == 8);
static_assert(offsetof(SyncCancelReg, flags) == 12);
static_assert(offsetof(SyncCancelReg, timeout) == 16);
static_assert(offsetof(SyncCancelReg, opcode) == 32);

// struct io_uring_file_index_range (IORING_REGISTER_FILE_ALLOC_RANGE).
struct FileIndexRange {
  std::uint32_t off = 0;
  std::uint32_t len = 0;
  std::uint64_t resv = 0;
};
static_assert(sizeof(FileIndexRange) == 16);
static_assert(offsetof(FileIndexRange, len) == 4);

// struct io_uring_recvmsg_out: the header a multishot recvmsg writes into its buffer.
struct RecvmsgOut {
  std::uint32_t namelen;
  std::uint32_t controllen;
  std::uint32_t payloadlen;
  std::uint32_t flags;
};
static_assert(sizeof(RecvmsgOut) == 16);
static_assert(offsetof(RecvmsgOut, payloadlen) == 8);

// struct futex_waitv: one futex of an Op::futex_waitv, which waits until any of them
// is woken.
struct FutexWaitv {
  std::uint64_t val = 0;    // the value the futex must hold for the wait to start
  std::uint64_t uaddr = 0;  // the futex word's address
  std::uint32_t flags = 0;  // futex2 flags
  std::uint32_t reserved = 0;
};
static_assert(sizeof(FutexWaitv) == 24);
static_assert(offsetof(FutexWaitv, uaddr) == 8);
static_assert(offsetof(FutexWaitv, flags) == 16);
static_assert(offsetof(FutexWaitv, reserved) == 20);

}  // namespace coring::ring
