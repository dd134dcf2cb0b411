// RingAbi: our abi.hpp against the installed <linux/io_uring.h> and <linux/futex.h>.
//
// abi.hpp writes the kernel's io_uring ABI out by hand, so that coring builds against
// any kernel headers and can use features newer than them. This file is the only one
// in the project that includes the installed headers (Debian 12 ships 6.1-era copies),
// and it checks every constant, struct size and field offset those headers also define
// against ours.
//
// Each group is a table of (ours, theirs) pairs. A static_assert pins the whole table
// at compile time (the compiler's note names the index of the first mismatch), and a
// TEST per table reports every pair by the kernel's name at run time.
//
// What the installed header lacks cannot be compared. Macros added after 6.1 are
// listed under #ifdef, so a newer header has them checked as they appear. Enumerators
// are invisible to the preprocessor: those newer than 6.1 are gated on LINUX_VERSION_CODE
// (the opcodes on the release that added each), and static_asserts on the counts of
// IORING_OP_* and IORING_REGISTER_* make a newer header's additions a compile error
// until they are listed here.
// Later headers renamed some reserved fields of the 6.1 one (io_sqring_offsets::resv2
// became user_addr, and so on); CORING_HEADER_OFFSET takes whichever name is there.
#include "coring/ring/abi.hpp"

#include <gtest/gtest.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
#include <linux/version.h>

#include <cstddef>
#include <cstdint>
#include <iterator>

namespace coring::ring::test {
namespace {

// One value as abi.hpp has it and as the kernel's header has it.
struct AbiPair {
  const char* name;  // the kernel's spelling
  std::uint64_t ours;
  std::uint64_t theirs;
};

template <typename Ours, typename Theirs>
constexpr AbiPair abi_pair(const char* name, Ours ours, Theirs theirs) {
  return {name, static_cast<std::uint64_t>(ours), static_cast<std::uint64_t>(theirs)};
}

#define CORING_ABI_PAIR(ours, theirs) abi_pair(#theirs, ours, theirs)
#define CORING_ABI_OFFSET(our_type, our_field, their_type, their_field) \
  CORING_ABI_PAIR(offsetof(our_type, our_field), offsetof(their_type, their_field))
// Offset and size of a field that has the same type on both sides.
#define CORING_ABI_FIELD(our_type, our_field, their_type, their_field) \
  CORING_ABI_OFFSET(our_type, our_field, their_type, their_field),     \
      CORING_ABI_PAIR(sizeof(our_type::our_field), sizeof(their_type::their_field))
#define CORING_ABI_SIZE(our_type, their_type) CORING_ABI_PAIR(sizeof(our_type), sizeof(their_type))

// The offset of `their_type::name`, or of the 6.1 header's `old_name` when the
// installed header predates the rename.
#define CORING_HEADER_OFFSET(their_type, name, old_name) \
  ([]<typename T = their_type>() constexpr {             \
    if constexpr (requires { &T::name; }) {              \
      return offsetof(T, name);                          \
    } else {                                             \
      return offsetof(T, old_name);                      \
    }                                                    \
  }())
#define CORING_ABI_RENAMED(our_type, our_field, their_type, name, old_name)                        \
  abi_pair("offsetof(" #their_type ", " #name " or " #old_name ")", offsetof(our_type, our_field), \
           CORING_HEADER_OFFSET(their_type, name, old_name))

// The index of the first pair that differs, or N if all agree.
template <std::size_t N>
constexpr std::size_t first_mismatch(const AbiPair (&pairs)[N]) {
  for (std::size_t i = 0; i < N; ++i) {
    if (pairs[i].ours != pairs[i].theirs) return i;
  }
  return N;
}

template <std::size_t N>
void expect_all_equal(const AbiPair (&pairs)[N]) {
  for (const AbiPair& pair : pairs) {
    EXPECT_EQ(pair.ours, pair.theirs)
        << "abi.hpp disagrees with <linux/io_uring.h> on " << pair.name;
  }
}

// --- Constants ---------------------------------------------------------------------------

constexpr AbiPair kOps[] = {
    CORING_ABI_PAIR(Op::nop, IORING_OP_NOP),
    CORING_ABI_PAIR(Op::readv, IORING_OP_READV),
    CORING_ABI_PAIR(Op::writev, IORING_OP_WRITEV),
    CORING_ABI_PAIR(Op::fsync, IORING_OP_FSYNC),
    CORING_ABI_PAIR(Op::read_fixed, IORING_OP_READ_FIXED),
    CORING_ABI_PAIR(Op::write_fixed, IORING_OP_WRITE_FIXED),
    CORING_ABI_PAIR(Op::poll_add, IORING_OP_POLL_ADD),
    CORING_ABI_PAIR(Op::poll_remove, IORING_OP_POLL_REMOVE),
    CORING_ABI_PAIR(Op::sync_file_range, IORING_OP_SYNC_FILE_RANGE),
    CORING_ABI_PAIR(Op::sendmsg, IORING_OP_SENDMSG),
    CORING_ABI_PAIR(Op::recvmsg, IORING_OP_RECVMSG),
    CORING_ABI_PAIR(Op::timeout, IORING_OP_TIMEOUT),
    CORING_ABI_PAIR(Op::timeout_remove, IORING_OP_TIMEOUT_REMOVE),
    CORING_ABI_PAIR(Op::accept, IORING_OP_ACCEPT),
    CORING_ABI_PAIR(Op::async_cancel, IORING_OP_ASYNC_CANCEL),
    CORING_ABI_PAIR(Op::link_timeout, IORING_OP_LINK_TIMEOUT),
    CORING_ABI_PAIR(Op::connect, IORING_OP_CONNECT),
    CORING_ABI_PAIR(Op::fallocate, IORING_OP_FALLOCATE),
    CORING_ABI_PAIR(Op::openat, IORING_OP_OPENAT),
    CORING_ABI_PAIR(Op::close, IORING_OP_CLOSE),
    CORING_ABI_PAIR(Op::files_update, IORING_OP_FILES_UPDATE),
    CORING_ABI_PAIR(Op::statx, IORING_OP_STATX),
    CORING_ABI_PAIR(Op::read, IORING_OP_READ),
    CORING_ABI_PAIR(Op::write, IORING_OP_WRITE),
    CORING_ABI_PAIR(Op::fadvise, IORING_OP_FADVISE),
    CORING_ABI_PAIR(Op::madvise, IORING_OP_MADVISE),
    CORING_ABI_PAIR(Op::send, IORING_OP_SEND),
    CORING_ABI_PAIR(Op::recv, IORING_OP_RECV),
    CORING_ABI_PAIR(Op::openat2, IORING_OP_OPENAT2),
    CORING_ABI_PAIR(Op::epoll_ctl, IORING_OP_EPOLL_CTL),
    CORING_ABI_PAIR(Op::splice, IORING_OP_SPLICE),
    CORING_ABI_PAIR(Op::provide_buffers, IORING_OP_PROVIDE_BUFFERS),
    CORING_ABI_PAIR(Op::remove_buffers, IORING_OP_REMOVE_BUFFERS),
    CORING_ABI_PAIR(Op::tee, IORING_OP_TEE),
    CORING_ABI_PAIR(Op::shutdown, IORING_OP_SHUTDOWN),
    CORING_ABI_PAIR(Op::renameat, IORING_OP_RENAMEAT),
    CORING_ABI_PAIR(Op::unlinkat, IORING_OP_UNLINKAT),
    CORING_ABI_PAIR(Op::mkdirat, IORING_OP_MKDIRAT),
    CORING_ABI_PAIR(Op::symlinkat, IORING_OP_SYMLINKAT),
    CORING_ABI_PAIR(Op::linkat, IORING_OP_LINKAT),
    CORING_ABI_PAIR(Op::msg_ring, IORING_OP_MSG_RING),
    CORING_ABI_PAIR(Op::fsetxattr, IORING_OP_FSETXATTR),
    CORING_ABI_PAIR(Op::setxattr, IORING_OP_SETXATTR),
    CORING_ABI_PAIR(Op::fgetxattr, IORING_OP_FGETXATTR),
    CORING_ABI_PAIR(Op::getxattr, IORING_OP_GETXATTR),
    CORING_ABI_PAIR(Op::socket, IORING_OP_SOCKET),
    CORING_ABI_PAIR(Op::uring_cmd, IORING_OP_URING_CMD),
    CORING_ABI_PAIR(Op::send_zc, IORING_OP_SEND_ZC),
    CORING_ABI_PAIR(Op::sendmsg_zc, IORING_OP_SENDMSG_ZC),
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
    CORING_ABI_PAIR(Op::read_multishot, IORING_OP_READ_MULTISHOT),
    CORING_ABI_PAIR(Op::waitid, IORING_OP_WAITID),
    CORING_ABI_PAIR(Op::futex_wait, IORING_OP_FUTEX_WAIT),
    CORING_ABI_PAIR(Op::futex_wake, IORING_OP_FUTEX_WAKE),
    CORING_ABI_PAIR(Op::futex_waitv, IORING_OP_FUTEX_WAITV),
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
    CORING_ABI_PAIR(Op::fixed_fd_install, IORING_OP_FIXED_FD_INSTALL),
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
    CORING_ABI_PAIR(Op::ftruncate, IORING_OP_FTRUNCATE),
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
    CORING_ABI_PAIR(Op::bind, IORING_OP_BIND),
    CORING_ABI_PAIR(Op::listen, IORING_OP_LISTEN),
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
    CORING_ABI_PAIR(Op::recv_zc, IORING_OP_RECV_ZC),
    CORING_ABI_PAIR(Op::epoll_wait, IORING_OP_EPOLL_WAIT),
    CORING_ABI_PAIR(Op::readv_fixed, IORING_OP_READV_FIXED),
    CORING_ABI_PAIR(Op::writev_fixed, IORING_OP_WRITEV_FIXED),
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 16, 0)
    CORING_ABI_PAIR(Op::pipe, IORING_OP_PIPE),
#endif
};
static_assert(first_mismatch(kOps) == std::size(kOps), "an Op differs from IORING_OP_*");
// Our Op knows at least every opcode the installed header knows.
static_assert(static_cast<unsigned>(IORING_OP_LAST) <= static_cast<unsigned>(Op::last));
static_assert(std::size(kOps) == IORING_OP_LAST, "every IORING_OP_* of the header is compared");

constexpr AbiPair kSqeFlags[] = {
    CORING_ABI_PAIR(sqe_flags::fixed_file, IOSQE_FIXED_FILE),
    CORING_ABI_PAIR(sqe_flags::io_drain, IOSQE_IO_DRAIN),
    CORING_ABI_PAIR(sqe_flags::io_link, IOSQE_IO_LINK),
    CORING_ABI_PAIR(sqe_flags::io_hardlink, IOSQE_IO_HARDLINK),
    CORING_ABI_PAIR(sqe_flags::async, IOSQE_ASYNC),
    CORING_ABI_PAIR(sqe_flags::buffer_select, IOSQE_BUFFER_SELECT),
    CORING_ABI_PAIR(sqe_flags::cqe_skip_success, IOSQE_CQE_SKIP_SUCCESS),
    CORING_ABI_PAIR(sqe_flags::fixed_file, 1U << IOSQE_FIXED_FILE_BIT),
    CORING_ABI_PAIR(sqe_flags::cqe_skip_success, 1U << IOSQE_CQE_SKIP_SUCCESS_BIT),
};
static_assert(first_mismatch(kSqeFlags) == std::size(kSqeFlags),
              "an sqe_flags differs from IOSQE_*");

constexpr AbiPair kSetupFlags[] = {
    CORING_ABI_PAIR(setup::iopoll, IORING_SETUP_IOPOLL),
    CORING_ABI_PAIR(setup::sqpoll, IORING_SETUP_SQPOLL),
    CORING_ABI_PAIR(setup::sq_aff, IORING_SETUP_SQ_AFF),
    CORING_ABI_PAIR(setup::cqsize, IORING_SETUP_CQSIZE),
    CORING_ABI_PAIR(setup::clamp, IORING_SETUP_CLAMP),
    CORING_ABI_PAIR(setup::attach_wq, IORING_SETUP_ATTACH_WQ),
    CORING_ABI_PAIR(setup::r_disabled, IORING_SETUP_R_DISABLED),
    CORING_ABI_PAIR(setup::submit_all, IORING_SETUP_SUBMIT_ALL),
    CORING_ABI_PAIR(setup::coop_taskrun, IORING_SETUP_COOP_TASKRUN),
    CORING_ABI_PAIR(setup::taskrun_flag, IORING_SETUP_TASKRUN_FLAG),
    CORING_ABI_PAIR(setup::sqe128, IORING_SETUP_SQE128),
    CORING_ABI_PAIR(setup::cqe32, IORING_SETUP_CQE32),
    CORING_ABI_PAIR(setup::single_issuer, IORING_SETUP_SINGLE_ISSUER),
    CORING_ABI_PAIR(setup::defer_taskrun, IORING_SETUP_DEFER_TASKRUN),
#ifdef IORING_SETUP_NO_MMAP
    CORING_ABI_PAIR(setup::no_mmap, IORING_SETUP_NO_MMAP),
#endif
#ifdef IORING_SETUP_REGISTERED_FD_ONLY
    CORING_ABI_PAIR(setup::registered_fd_only, IORING_SETUP_REGISTERED_FD_ONLY),
#endif
#ifdef IORING_SETUP_NO_SQARRAY
    CORING_ABI_PAIR(setup::no_sqarray, IORING_SETUP_NO_SQARRAY),
#endif
#ifdef IORING_SETUP_HYBRID_IOPOLL
    CORING_ABI_PAIR(setup::hybrid_iopoll, IORING_SETUP_HYBRID_IOPOLL),
#endif
#ifdef IORING_SETUP_CQE_MIXED
    CORING_ABI_PAIR(setup::cqe_mixed, IORING_SETUP_CQE_MIXED),
#endif
};
static_assert(first_mismatch(kSetupFlags) == std::size(kSetupFlags),
              "a setup flag differs from IORING_SETUP_*");

constexpr AbiPair kEnterFlags[] = {
    CORING_ABI_PAIR(enter_flags::getevents, IORING_ENTER_GETEVENTS),
    CORING_ABI_PAIR(enter_flags::sq_wakeup, IORING_ENTER_SQ_WAKEUP),
    CORING_ABI_PAIR(enter_flags::sq_wait, IORING_ENTER_SQ_WAIT),
    CORING_ABI_PAIR(enter_flags::ext_arg, IORING_ENTER_EXT_ARG),
    CORING_ABI_PAIR(enter_flags::registered_ring, IORING_ENTER_REGISTERED_RING),
#ifdef IORING_ENTER_ABS_TIMER
    CORING_ABI_PAIR(enter_flags::abs_timer, IORING_ENTER_ABS_TIMER),
#endif
#ifdef IORING_ENTER_EXT_ARG_REG
    CORING_ABI_PAIR(enter_flags::ext_arg_reg, IORING_ENTER_EXT_ARG_REG),
#endif
#ifdef IORING_ENTER_NO_IOWAIT
    CORING_ABI_PAIR(enter_flags::no_iowait, IORING_ENTER_NO_IOWAIT),
#endif
};
static_assert(first_mismatch(kEnterFlags) == std::size(kEnterFlags),
              "an enter flag differs from IORING_ENTER_*");

constexpr AbiPair kFeatures[] = {
    CORING_ABI_PAIR(feat::single_mmap, IORING_FEAT_SINGLE_MMAP),
    CORING_ABI_PAIR(feat::nodrop, IORING_FEAT_NODROP),
    CORING_ABI_PAIR(feat::submit_stable, IORING_FEAT_SUBMIT_STABLE),
    CORING_ABI_PAIR(feat::rw_cur_pos, IORING_FEAT_RW_CUR_POS),
    CORING_ABI_PAIR(feat::cur_personality, IORING_FEAT_CUR_PERSONALITY),
    CORING_ABI_PAIR(feat::fast_poll, IORING_FEAT_FAST_POLL),
    CORING_ABI_PAIR(feat::poll_32bits, IORING_FEAT_POLL_32BITS),
    CORING_ABI_PAIR(feat::sqpoll_nonfixed, IORING_FEAT_SQPOLL_NONFIXED),
    CORING_ABI_PAIR(feat::ext_arg, IORING_FEAT_EXT_ARG),
    CORING_ABI_PAIR(feat::native_workers, IORING_FEAT_NATIVE_WORKERS),
    CORING_ABI_PAIR(feat::rsrc_tags, IORING_FEAT_RSRC_TAGS),
    CORING_ABI_PAIR(feat::cqe_skip, IORING_FEAT_CQE_SKIP),
    CORING_ABI_PAIR(feat::linked_file, IORING_FEAT_LINKED_FILE),
#ifdef IORING_FEAT_REG_REG_RING
    CORING_ABI_PAIR(feat::reg_reg_ring, IORING_FEAT_REG_REG_RING),
#endif
#ifdef IORING_FEAT_RECVSEND_BUNDLE
    CORING_ABI_PAIR(feat::recvsend_bundle, IORING_FEAT_RECVSEND_BUNDLE),
#endif
#ifdef IORING_FEAT_MIN_TIMEOUT
    CORING_ABI_PAIR(feat::min_timeout, IORING_FEAT_MIN_TIMEOUT),
#endif
#ifdef IORING_FEAT_RW_ATTR
    CORING_ABI_PAIR(feat::rw_attr, IORING_FEAT_RW_ATTR),
#endif
#ifdef IORING_FEAT_NO_IOWAIT
    CORING_ABI_PAIR(feat::no_iowait, IORING_FEAT_NO_IOWAIT),
#endif
};
static_assert(first_mismatch(kFeatures) == std::size(kFeatures),
              "a feat differs from IORING_FEAT_*");

constexpr AbiPair kRingFlags[] = {
    CORING_ABI_PAIR(sq_flags::need_wakeup, IORING_SQ_NEED_WAKEUP),
    CORING_ABI_PAIR(sq_flags::cq_overflow, IORING_SQ_CQ_OVERFLOW),
    CORING_ABI_PAIR(sq_flags::taskrun, IORING_SQ_TASKRUN),
    CORING_ABI_PAIR(cq_flags::eventfd_disabled, IORING_CQ_EVENTFD_DISABLED),
};
static_assert(first_mismatch(kRingFlags) == std::size(kRingFlags), "an SQ/CQ ring flag differs");

constexpr AbiPair kCqeFlags[] = {
    CORING_ABI_PAIR(cqe_flags::buffer, IORING_CQE_F_BUFFER),
    CORING_ABI_PAIR(cqe_flags::more, IORING_CQE_F_MORE),
    CORING_ABI_PAIR(cqe_flags::sock_nonempty, IORING_CQE_F_SOCK_NONEMPTY),
    CORING_ABI_PAIR(cqe_flags::notif, IORING_CQE_F_NOTIF),
    CORING_ABI_PAIR(cqe_flags::buffer_shift, IORING_CQE_BUFFER_SHIFT),
#ifdef IORING_CQE_F_BUF_MORE
    CORING_ABI_PAIR(cqe_flags::buf_more, IORING_CQE_F_BUF_MORE),
#endif
#ifdef IORING_CQE_F_SKIP
    CORING_ABI_PAIR(cqe_flags::skip, IORING_CQE_F_SKIP),
#endif
#ifdef IORING_CQE_F_32
    CORING_ABI_PAIR(cqe_flags::cqe32, IORING_CQE_F_32),
#endif
};
static_assert(first_mismatch(kCqeFlags) == std::size(kCqeFlags),
              "a CQE flag differs from IORING_CQE_F_*");

constexpr AbiPair kMmapOffsets[] = {
    CORING_ABI_PAIR(mmap_offset::sq_ring, IORING_OFF_SQ_RING),
    CORING_ABI_PAIR(mmap_offset::cq_ring, IORING_OFF_CQ_RING),
    CORING_ABI_PAIR(mmap_offset::sqes, IORING_OFF_SQES),
    CORING_ABI_PAIR(mmap_offset::mmap_mask, IORING_OFF_MMAP_MASK),
#ifdef IORING_OFF_PBUF_RING
    CORING_ABI_PAIR(mmap_offset::pbuf_ring, IORING_OFF_PBUF_RING),
#endif
#ifdef IORING_OFF_PBUF_SHIFT
    CORING_ABI_PAIR(mmap_offset::pbuf_shift, IORING_OFF_PBUF_SHIFT),
#endif
};
static_assert(first_mismatch(kMmapOffsets) == std::size(kMmapOffsets),
              "an mmap offset differs from IORING_OFF_*");

constexpr AbiPair kRegisterOps[] = {
    CORING_ABI_PAIR(RegisterOp::register_buffers, IORING_REGISTER_BUFFERS),
    CORING_ABI_PAIR(RegisterOp::unregister_buffers, IORING_UNREGISTER_BUFFERS),
    CORING_ABI_PAIR(RegisterOp::register_files, IORING_REGISTER_FILES),
    CORING_ABI_PAIR(RegisterOp::unregister_files, IORING_UNREGISTER_FILES),
    CORING_ABI_PAIR(RegisterOp::register_eventfd, IORING_REGISTER_EVENTFD),
    CORING_ABI_PAIR(RegisterOp::unregister_eventfd, IORING_UNREGISTER_EVENTFD),
    CORING_ABI_PAIR(RegisterOp::register_files_update, IORING_REGISTER_FILES_UPDATE),
    CORING_ABI_PAIR(RegisterOp::register_eventfd_async, IORING_REGISTER_EVENTFD_ASYNC),
    CORING_ABI_PAIR(RegisterOp::register_probe, IORING_REGISTER_PROBE),
    CORING_ABI_PAIR(RegisterOp::register_personality, IORING_REGISTER_PERSONALITY),
    CORING_ABI_PAIR(RegisterOp::unregister_personality, IORING_UNREGISTER_PERSONALITY),
    CORING_ABI_PAIR(RegisterOp::register_restrictions, IORING_REGISTER_RESTRICTIONS),
    CORING_ABI_PAIR(RegisterOp::register_enable_rings, IORING_REGISTER_ENABLE_RINGS),
    CORING_ABI_PAIR(RegisterOp::register_files2, IORING_REGISTER_FILES2),
    CORING_ABI_PAIR(RegisterOp::register_files_update2, IORING_REGISTER_FILES_UPDATE2),
    CORING_ABI_PAIR(RegisterOp::register_buffers2, IORING_REGISTER_BUFFERS2),
    CORING_ABI_PAIR(RegisterOp::register_buffers_update, IORING_REGISTER_BUFFERS_UPDATE),
    CORING_ABI_PAIR(RegisterOp::register_iowq_aff, IORING_REGISTER_IOWQ_AFF),
    CORING_ABI_PAIR(RegisterOp::unregister_iowq_aff, IORING_UNREGISTER_IOWQ_AFF),
    CORING_ABI_PAIR(RegisterOp::register_iowq_max_workers, IORING_REGISTER_IOWQ_MAX_WORKERS),
    CORING_ABI_PAIR(RegisterOp::register_ring_fds, IORING_REGISTER_RING_FDS),
    CORING_ABI_PAIR(RegisterOp::unregister_ring_fds, IORING_UNREGISTER_RING_FDS),
    CORING_ABI_PAIR(RegisterOp::register_pbuf_ring, IORING_REGISTER_PBUF_RING),
    CORING_ABI_PAIR(RegisterOp::unregister_pbuf_ring, IORING_UNREGISTER_PBUF_RING),
    CORING_ABI_PAIR(RegisterOp::register_sync_cancel, IORING_REGISTER_SYNC_CANCEL),
    CORING_ABI_PAIR(RegisterOp::register_file_alloc_range, IORING_REGISTER_FILE_ALLOC_RANGE),
};
static_assert(first_mismatch(kRegisterOps) == std::size(kRegisterOps),
              "a RegisterOp differs from IORING_REGISTER_*");
static_assert(std::size(kRegisterOps) == IORING_REGISTER_LAST,
              "every IORING_REGISTER_* of the header is compared");
static_assert(static_cast<unsigned>(IORING_REGISTER_LAST) <=
              static_cast<unsigned>(RegisterOp::last));

constexpr AbiPair kRestrictions[] = {
    CORING_ABI_PAIR(RestrictionOp::register_op, IORING_RESTRICTION_REGISTER_OP),
    CORING_ABI_PAIR(RestrictionOp::sqe_op, IORING_RESTRICTION_SQE_OP),
    CORING_ABI_PAIR(RestrictionOp::sqe_flags_allowed, IORING_RESTRICTION_SQE_FLAGS_ALLOWED),
    CORING_ABI_PAIR(RestrictionOp::sqe_flags_required, IORING_RESTRICTION_SQE_FLAGS_REQUIRED),
    // RestrictionOp has no `last`: its four values are all there are.
    CORING_ABI_PAIR(static_cast<unsigned>(RestrictionOp::sqe_flags_required) + 1,
                    IORING_RESTRICTION_LAST),
};
static_assert(first_mismatch(kRestrictions) == std::size(kRestrictions), "a RestrictionOp differs");

// Flags of single operations: fsync, timeout, poll, cancel, send/recv, accept, msg_ring.
constexpr AbiPair kOperationFlags[] = {
    CORING_ABI_PAIR(fsync_datasync, IORING_FSYNC_DATASYNC),
    CORING_ABI_PAIR(timeout_flags::abs, IORING_TIMEOUT_ABS),
    CORING_ABI_PAIR(timeout_flags::update, IORING_TIMEOUT_UPDATE),
    CORING_ABI_PAIR(timeout_flags::boottime, IORING_TIMEOUT_BOOTTIME),
    CORING_ABI_PAIR(timeout_flags::realtime, IORING_TIMEOUT_REALTIME),
    CORING_ABI_PAIR(timeout_flags::link_timeout_update, IORING_LINK_TIMEOUT_UPDATE),
    CORING_ABI_PAIR(timeout_flags::etime_success, IORING_TIMEOUT_ETIME_SUCCESS),
    CORING_ABI_PAIR(timeout_flags::clock_mask, IORING_TIMEOUT_CLOCK_MASK),
    CORING_ABI_PAIR(timeout_flags::update_mask, IORING_TIMEOUT_UPDATE_MASK),
#ifdef IORING_TIMEOUT_MULTISHOT
    CORING_ABI_PAIR(timeout_flags::multishot, IORING_TIMEOUT_MULTISHOT),
#endif
    CORING_ABI_PAIR(poll_flags::add_multi, IORING_POLL_ADD_MULTI),
    CORING_ABI_PAIR(poll_flags::update_events, IORING_POLL_UPDATE_EVENTS),
    CORING_ABI_PAIR(poll_flags::update_user_data, IORING_POLL_UPDATE_USER_DATA),
    CORING_ABI_PAIR(poll_flags::add_level, IORING_POLL_ADD_LEVEL),
    CORING_ABI_PAIR(cancel_flags::all, IORING_ASYNC_CANCEL_ALL),
    CORING_ABI_PAIR(cancel_flags::fd, IORING_ASYNC_CANCEL_FD),
    CORING_ABI_PAIR(cancel_flags::any, IORING_ASYNC_CANCEL_ANY),
    CORING_ABI_PAIR(cancel_flags::fd_fixed, IORING_ASYNC_CANCEL_FD_FIXED),
    CORING_ABI_PAIR(cancel_flags::userdata, IORING_ASYNC_CANCEL_USERDATA),
    CORING_ABI_PAIR(cancel_flags::op, IORING_ASYNC_CANCEL_OP),
    CORING_ABI_PAIR(recvsend_flags::poll_first, IORING_RECVSEND_POLL_FIRST),
    CORING_ABI_PAIR(recvsend_flags::recv_multishot, IORING_RECV_MULTISHOT),
    CORING_ABI_PAIR(recvsend_flags::fixed_buf, IORING_RECVSEND_FIXED_BUF),
    CORING_ABI_PAIR(recvsend_flags::send_zc_report_usage, IORING_SEND_ZC_REPORT_USAGE),
#ifdef IORING_RECVSEND_BUNDLE
    CORING_ABI_PAIR(recvsend_flags::bundle, IORING_RECVSEND_BUNDLE),
#endif
#ifdef IORING_SEND_VECTORIZED
    CORING_ABI_PAIR(recvsend_flags::send_vectorized, IORING_SEND_VECTORIZED),
#endif
    CORING_ABI_PAIR(notif_usage_zc_copied, IORING_NOTIF_USAGE_ZC_COPIED),
    CORING_ABI_PAIR(accept_flags::multishot, IORING_ACCEPT_MULTISHOT),
#ifdef IORING_ACCEPT_DONTWAIT
    CORING_ABI_PAIR(accept_flags::dontwait, IORING_ACCEPT_DONTWAIT),
#endif
#ifdef IORING_ACCEPT_POLL_FIRST
    CORING_ABI_PAIR(accept_flags::poll_first, IORING_ACCEPT_POLL_FIRST),
#endif
    CORING_ABI_PAIR(msg_ring::data, IORING_MSG_DATA),
    CORING_ABI_PAIR(msg_ring::send_fd, IORING_MSG_SEND_FD),
    CORING_ABI_PAIR(msg_ring::cqe_skip, IORING_MSG_RING_CQE_SKIP),
#ifdef IORING_MSG_RING_FLAGS_PASS
    CORING_ABI_PAIR(msg_ring::flags_pass, IORING_MSG_RING_FLAGS_PASS),
#endif
    CORING_ABI_PAIR(uring_cmd_flags::fixed, IORING_URING_CMD_FIXED),
#ifdef IORING_URING_CMD_MULTISHOT
    CORING_ABI_PAIR(uring_cmd_flags::multishot, IORING_URING_CMD_MULTISHOT),
#endif
#ifdef IORING_FIXED_FD_NO_CLOEXEC
    CORING_ABI_PAIR(fixed_fd_no_cloexec, IORING_FIXED_FD_NO_CLOEXEC),
#endif
#ifdef IORING_NOP_INJECT_RESULT
    CORING_ABI_PAIR(nop_flags::inject_result, IORING_NOP_INJECT_RESULT),
#endif
#ifdef IORING_NOP_FILE
    CORING_ABI_PAIR(nop_flags::file, IORING_NOP_FILE),
#endif
#ifdef IORING_NOP_FIXED_FILE
    CORING_ABI_PAIR(nop_flags::fixed_file, IORING_NOP_FIXED_FILE),
#endif
#ifdef IORING_NOP_FIXED_BUFFER
    CORING_ABI_PAIR(nop_flags::fixed_buffer, IORING_NOP_FIXED_BUFFER),
#endif
#ifdef IORING_NOP_TW
    CORING_ABI_PAIR(nop_flags::tw, IORING_NOP_TW),
#endif
#ifdef IORING_NOP_CQE32
    CORING_ABI_PAIR(nop_flags::cqe32, IORING_NOP_CQE32),
#endif
};
static_assert(first_mismatch(kOperationFlags) == std::size(kOperationFlags),
              "an operation flag differs");

// Registration and resource constants.
constexpr AbiPair kResourceConstants[] = {
    CORING_ABI_PAIR(file_index_alloc, IORING_FILE_INDEX_ALLOC),
    CORING_ABI_PAIR(rsrc_register_sparse, IORING_RSRC_REGISTER_SPARSE),
    CORING_ABI_PAIR(register_files_skip, IORING_REGISTER_FILES_SKIP),
    CORING_ABI_PAIR(probe_op_supported, IO_URING_OP_SUPPORTED),
    CORING_ABI_PAIR(splice_f_fd_in_fixed, SPLICE_F_FD_IN_FIXED),
// Enumerators, invisible to #ifdef.
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
    CORING_ABI_PAIR(register_use_registered_ring, IORING_REGISTER_USE_REGISTERED_RING),
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
    CORING_ABI_PAIR(pbuf_flags::mmap, IOU_PBUF_RING_MMAP),
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
    CORING_ABI_PAIR(pbuf_flags::inc, IOU_PBUF_RING_INC),
#endif
};
static_assert(first_mismatch(kResourceConstants) == std::size(kResourceConstants),
              "a resource constant differs");

// The futex2 flags and limits of the futex operations (<linux/futex.h>). Headers before
// 6.7 spell the 32-bit size FUTEX_32 and the private flag FUTEX_PRIVATE_FLAG only.
constexpr AbiPair kFutexConstants[] = {
    CORING_ABI_PAIR(futex2::size_u32, FUTEX_32),
    CORING_ABI_PAIR(futex2::private_flag, FUTEX_PRIVATE_FLAG),
    CORING_ABI_PAIR(futex_bitset_match_any, FUTEX_BITSET_MATCH_ANY),
    CORING_ABI_PAIR(futex_waitv_max, FUTEX_WAITV_MAX),
#ifdef FUTEX2_SIZE_U32
    CORING_ABI_PAIR(futex2::size_u8, FUTEX2_SIZE_U8),
    CORING_ABI_PAIR(futex2::size_u16, FUTEX2_SIZE_U16),
    CORING_ABI_PAIR(futex2::size_u32, FUTEX2_SIZE_U32),
    CORING_ABI_PAIR(futex2::size_u64, FUTEX2_SIZE_U64),
    CORING_ABI_PAIR(futex2::numa, FUTEX2_NUMA),
    CORING_ABI_PAIR(futex2::private_flag, FUTEX2_PRIVATE),
    CORING_ABI_PAIR(futex2::size_mask, FUTEX2_SIZE_MASK),
#endif
};
static_assert(first_mismatch(kFutexConstants) == std::size(kFutexConstants),
              "a futex constant differs");

// --- Structures ---------------------------------------------------------------------------
// Each field of the kernel's unions is compared with the flattened name abi.hpp gives its
// slot (see the comment on Sqe).

constexpr AbiPair kSqeLayout[] = {
    CORING_ABI_SIZE(Sqe, io_uring_sqe),
    CORING_ABI_FIELD(Sqe, opcode, io_uring_sqe, opcode),
    CORING_ABI_FIELD(Sqe, flags, io_uring_sqe, flags),
    CORING_ABI_FIELD(Sqe, ioprio, io_uring_sqe, ioprio),
    CORING_ABI_FIELD(Sqe, fd, io_uring_sqe, fd),
    // off: off, addr2, {cmd_op, __pad1}
    CORING_ABI_FIELD(Sqe, off, io_uring_sqe, off),
    CORING_ABI_FIELD(Sqe, off, io_uring_sqe, addr2),
    CORING_ABI_OFFSET(Sqe, off, io_uring_sqe, cmd_op),
    CORING_ABI_PAIR(offsetof(Sqe, off) + sizeof(std::uint32_t), offsetof(io_uring_sqe, __pad1)),
    // addr: addr, splice_off_in
    CORING_ABI_FIELD(Sqe, addr, io_uring_sqe, addr),
    CORING_ABI_FIELD(Sqe, addr, io_uring_sqe, splice_off_in),
    CORING_ABI_FIELD(Sqe, len, io_uring_sqe, len),
    // op_flags: one 32-bit slot for every operation's flags.
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, rw_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, fsync_flags),
    CORING_ABI_OFFSET(Sqe, op_flags, io_uring_sqe, poll_events),  // the 16-bit compatibility alias
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, poll32_events),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, sync_range_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, msg_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, timeout_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, accept_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, cancel_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, open_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, statx_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, fadvise_advice),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, splice_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, rename_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, unlink_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, hardlink_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, xattr_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, msg_ring_flags),
    CORING_ABI_FIELD(Sqe, op_flags, io_uring_sqe, uring_cmd_flags),
    CORING_ABI_FIELD(Sqe, user_data, io_uring_sqe, user_data),
    // buf_index: buf_index, buf_group
    CORING_ABI_FIELD(Sqe, buf_index, io_uring_sqe, buf_index),
    CORING_ABI_FIELD(Sqe, buf_index, io_uring_sqe, buf_group),
    CORING_ABI_FIELD(Sqe, personality, io_uring_sqe, personality),
    // file_index: splice_fd_in, file_index, {addr_len, __pad3}
    CORING_ABI_FIELD(Sqe, file_index, io_uring_sqe, splice_fd_in),
    CORING_ABI_FIELD(Sqe, file_index, io_uring_sqe, file_index),
    CORING_ABI_OFFSET(Sqe, file_index, io_uring_sqe, addr_len),
    CORING_ABI_PAIR(offsetof(Sqe, file_index) + sizeof(std::uint16_t),
                    offsetof(io_uring_sqe, __pad3)),
    // addr3: addr3, and the start of the SQE128 command area; pad2: __pad2
    CORING_ABI_FIELD(Sqe, addr3, io_uring_sqe, addr3),
    CORING_ABI_OFFSET(Sqe, addr3, io_uring_sqe, cmd),
    CORING_ABI_FIELD(Sqe, pad2, io_uring_sqe, __pad2),
};
static_assert(first_mismatch(kSqeLayout) == std::size(kSqeLayout), "Sqe differs from io_uring_sqe");

constexpr AbiPair kCqeLayout[] = {
    CORING_ABI_SIZE(Cqe, io_uring_cqe),
    CORING_ABI_FIELD(Cqe, user_data, io_uring_cqe, user_data),
    CORING_ABI_FIELD(Cqe, res, io_uring_cqe, res),
    CORING_ABI_FIELD(Cqe, flags, io_uring_cqe, flags),
    // The CQE32 tail is a flexible array in the kernel's struct.
    CORING_ABI_OFFSET(Cqe32, big_cqe, io_uring_cqe, big_cqe),
};
static_assert(first_mismatch(kCqeLayout) == std::size(kCqeLayout), "Cqe differs from io_uring_cqe");

constexpr AbiPair kParamsLayout[] = {
    CORING_ABI_SIZE(Params, io_uring_params),
    CORING_ABI_FIELD(Params, sq_entries, io_uring_params, sq_entries),
    CORING_ABI_FIELD(Params, cq_entries, io_uring_params, cq_entries),
    CORING_ABI_FIELD(Params, flags, io_uring_params, flags),
    CORING_ABI_FIELD(Params, sq_thread_cpu, io_uring_params, sq_thread_cpu),
    CORING_ABI_FIELD(Params, sq_thread_idle, io_uring_params, sq_thread_idle),
    CORING_ABI_FIELD(Params, features, io_uring_params, features),
    CORING_ABI_FIELD(Params, wq_fd, io_uring_params, wq_fd),
    CORING_ABI_FIELD(Params, resv, io_uring_params, resv),
    CORING_ABI_FIELD(Params, sq_off, io_uring_params, sq_off),
    CORING_ABI_FIELD(Params, cq_off, io_uring_params, cq_off),
};
static_assert(first_mismatch(kParamsLayout) == std::size(kParamsLayout),
              "Params differs from io_uring_params");

constexpr AbiPair kOpenHowLayout[] = {
    CORING_ABI_SIZE(OpenHow, open_how),
    CORING_ABI_FIELD(OpenHow, flags, open_how, flags),
    CORING_ABI_FIELD(OpenHow, mode, open_how, mode),
    CORING_ABI_FIELD(OpenHow, resolve, open_how, resolve),
    CORING_ABI_PAIR(resolve_flags::no_xdev, RESOLVE_NO_XDEV),
    CORING_ABI_PAIR(resolve_flags::no_magiclinks, RESOLVE_NO_MAGICLINKS),
    CORING_ABI_PAIR(resolve_flags::no_symlinks, RESOLVE_NO_SYMLINKS),
    CORING_ABI_PAIR(resolve_flags::beneath, RESOLVE_BENEATH),
    CORING_ABI_PAIR(resolve_flags::in_root, RESOLVE_IN_ROOT),
    CORING_ABI_PAIR(resolve_flags::cached, RESOLVE_CACHED),
};
static_assert(first_mismatch(kOpenHowLayout) == std::size(kOpenHowLayout),
              "OpenHow or a RESOLVE_* flag differs from <linux/openat2.h>");

constexpr AbiPair kRingOffsetsLayout[] = {
    CORING_ABI_SIZE(SqringOffsets, io_sqring_offsets),
    CORING_ABI_FIELD(SqringOffsets, head, io_sqring_offsets, head),
    CORING_ABI_FIELD(SqringOffsets, tail, io_sqring_offsets, tail),
    CORING_ABI_FIELD(SqringOffsets, ring_mask, io_sqring_offsets, ring_mask),
    CORING_ABI_FIELD(SqringOffsets, ring_entries, io_sqring_offsets, ring_entries),
    CORING_ABI_FIELD(SqringOffsets, flags, io_sqring_offsets, flags),
    CORING_ABI_FIELD(SqringOffsets, dropped, io_sqring_offsets, dropped),
    CORING_ABI_FIELD(SqringOffsets, array, io_sqring_offsets, array),
    CORING_ABI_FIELD(SqringOffsets, resv1, io_sqring_offsets, resv1),
    CORING_ABI_RENAMED(SqringOffsets, user_addr, io_sqring_offsets, user_addr, resv2),
    CORING_ABI_SIZE(CqringOffsets, io_cqring_offsets),
    CORING_ABI_FIELD(CqringOffsets, head, io_cqring_offsets, head),
    CORING_ABI_FIELD(CqringOffsets, tail, io_cqring_offsets, tail),
    CORING_ABI_FIELD(CqringOffsets, ring_mask, io_cqring_offsets, ring_mask),
    CORING_ABI_FIELD(CqringOffsets, ring_entries, io_cqring_offsets, ring_entries),
    CORING_ABI_FIELD(CqringOffsets, overflow, io_cqring_offsets, overflow),
    CORING_ABI_FIELD(CqringOffsets, cqes, io_cqring_offsets, cqes),
    CORING_ABI_FIELD(CqringOffsets, flags, io_cqring_offsets, flags),
    CORING_ABI_FIELD(CqringOffsets, resv1, io_cqring_offsets, resv1),
    CORING_ABI_RENAMED(CqringOffsets, user_addr, io_cqring_offsets, user_addr, resv2),
};
static_assert(first_mismatch(kRingOffsetsLayout) == std::size(kRingOffsetsLayout),
              "ring offsets differ");

// The arguments of file and buffer registration.
constexpr AbiPair kRsrcLayouts[] = {
    CORING_ABI_SIZE(FilesUpdate, io_uring_files_update),
    CORING_ABI_FIELD(FilesUpdate, offset, io_uring_files_update, offset),
    CORING_ABI_FIELD(FilesUpdate, resv, io_uring_files_update, resv),
    CORING_ABI_FIELD(FilesUpdate, fds, io_uring_files_update, fds),
    CORING_ABI_SIZE(RsrcRegister, io_uring_rsrc_register),
    CORING_ABI_FIELD(RsrcRegister, nr, io_uring_rsrc_register, nr),
    CORING_ABI_FIELD(RsrcRegister, flags, io_uring_rsrc_register, flags),
    CORING_ABI_FIELD(RsrcRegister, resv2, io_uring_rsrc_register, resv2),
    CORING_ABI_FIELD(RsrcRegister, data, io_uring_rsrc_register, data),
    CORING_ABI_FIELD(RsrcRegister, tags, io_uring_rsrc_register, tags),
    CORING_ABI_SIZE(RsrcUpdate, io_uring_rsrc_update),
    CORING_ABI_FIELD(RsrcUpdate, offset, io_uring_rsrc_update, offset),
    CORING_ABI_FIELD(RsrcUpdate, resv, io_uring_rsrc_update, resv),
    CORING_ABI_FIELD(RsrcUpdate, data, io_uring_rsrc_update, data),
    CORING_ABI_SIZE(RsrcUpdate2, io_uring_rsrc_update2),
    CORING_ABI_FIELD(RsrcUpdate2, offset, io_uring_rsrc_update2, offset),
    CORING_ABI_FIELD(RsrcUpdate2, resv, io_uring_rsrc_update2, resv),
    CORING_ABI_FIELD(RsrcUpdate2, data, io_uring_rsrc_update2, data),
    CORING_ABI_FIELD(RsrcUpdate2, tags, io_uring_rsrc_update2, tags),
    CORING_ABI_FIELD(RsrcUpdate2, nr, io_uring_rsrc_update2, nr),
    CORING_ABI_FIELD(RsrcUpdate2, resv2, io_uring_rsrc_update2, resv2),
};
static_assert(first_mismatch(kRsrcLayouts) == std::size(kRsrcLayouts), "an rsrc struct differs");

// Probe and restriction records.
constexpr AbiPair kProbeLayouts[] = {
    CORING_ABI_SIZE(ProbeOp, io_uring_probe_op),
    CORING_ABI_FIELD(ProbeOp, op, io_uring_probe_op, op),
    CORING_ABI_FIELD(ProbeOp, resv, io_uring_probe_op, resv),
    CORING_ABI_FIELD(ProbeOp, flags, io_uring_probe_op, flags),
    CORING_ABI_FIELD(ProbeOp, resv2, io_uring_probe_op, resv2),
    // io_uring_probe is our ProbeHeader followed by the ops[] flexible array.
    CORING_ABI_SIZE(ProbeHeader, io_uring_probe),
    CORING_ABI_PAIR(sizeof(ProbeHeader), offsetof(io_uring_probe, ops)),
    CORING_ABI_FIELD(ProbeHeader, last_op, io_uring_probe, last_op),
    CORING_ABI_FIELD(ProbeHeader, ops_len, io_uring_probe, ops_len),
    CORING_ABI_FIELD(ProbeHeader, resv, io_uring_probe, resv),
    CORING_ABI_FIELD(ProbeHeader, resv2, io_uring_probe, resv2),
    CORING_ABI_SIZE(Restriction, io_uring_restriction),
    CORING_ABI_FIELD(Restriction, opcode, io_uring_restriction, opcode),
    // arg: register_op, sqe_op, sqe_flags
    CORING_ABI_FIELD(Restriction, arg, io_uring_restriction, register_op),
    CORING_ABI_FIELD(Restriction, arg, io_uring_restriction, sqe_op),
    CORING_ABI_FIELD(Restriction, arg, io_uring_restriction, sqe_flags),
    CORING_ABI_FIELD(Restriction, resv, io_uring_restriction, resv),
    CORING_ABI_FIELD(Restriction, resv2, io_uring_restriction, resv2),
};
static_assert(first_mismatch(kProbeLayouts) == std::size(kProbeLayouts),
              "a probe or restriction struct differs");

// Provided-buffer rings. The ring's tail overlays bufs[0].resv; its other fields name
// the rest of the first entry. io_uring_buf_ring::bufs itself is not compared: the 6.1
// header's __DECLARE_FLEX_ARRAY wraps it in a struct with an empty member, which is
// one byte in C++ (not zero, as in C), so in C++ it lands at offset 8 instead of the
// kernel's 0. Later headers fixed the macro for C++.
constexpr AbiPair kBufRingLayouts[] = {
    CORING_ABI_SIZE(Buf, io_uring_buf),
    CORING_ABI_FIELD(Buf, addr, io_uring_buf, addr),
    CORING_ABI_FIELD(Buf, len, io_uring_buf, len),
    CORING_ABI_FIELD(Buf, bid, io_uring_buf, bid),
    CORING_ABI_FIELD(Buf, resv, io_uring_buf, resv),
    CORING_ABI_SIZE(Buf, io_uring_buf_ring),
    CORING_ABI_PAIR(buf_ring_tail_offset, offsetof(io_uring_buf_ring, tail)),
    CORING_ABI_PAIR(sizeof(std::uint16_t), sizeof(io_uring_buf_ring::tail)),
    CORING_ABI_OFFSET(Buf, addr, io_uring_buf_ring, resv1),
    CORING_ABI_OFFSET(Buf, len, io_uring_buf_ring, resv2),
    CORING_ABI_OFFSET(Buf, bid, io_uring_buf_ring, resv3),
    CORING_ABI_SIZE(BufReg, io_uring_buf_reg),
    CORING_ABI_FIELD(BufReg, ring_addr, io_uring_buf_reg, ring_addr),
    CORING_ABI_FIELD(BufReg, ring_entries, io_uring_buf_reg, ring_entries),
    CORING_ABI_FIELD(BufReg, bgid, io_uring_buf_reg, bgid),
    CORING_ABI_RENAMED(BufReg, flags, io_uring_buf_reg, flags, pad),
    CORING_ABI_FIELD(BufReg, resv, io_uring_buf_reg, resv),
};
static_assert(first_mismatch(kBufRingLayouts) == std::size(kBufRingLayouts),
              "a buffer ring struct differs");

// The remaining arguments: enter's extended argument, sync cancel, file alloc range,
// the multishot recvmsg header, and the kernel's timespec.
constexpr AbiPair kArgumentLayouts[] = {
    CORING_ABI_SIZE(GeteventsArg, io_uring_getevents_arg),
    CORING_ABI_FIELD(GeteventsArg, sigmask, io_uring_getevents_arg, sigmask),
    CORING_ABI_FIELD(GeteventsArg, sigmask_sz, io_uring_getevents_arg, sigmask_sz),
    CORING_ABI_RENAMED(GeteventsArg, min_wait_usec, io_uring_getevents_arg, min_wait_usec, pad),
    CORING_ABI_FIELD(GeteventsArg, ts, io_uring_getevents_arg, ts),
    CORING_ABI_SIZE(SyncCancelReg, io_uring_sync_cancel_reg),
    CORING_ABI_FIELD(SyncCancelReg, addr, io_uring_sync_cancel_reg, addr),
    CORING_ABI_FIELD(SyncCancelReg, fd, io_uring_sync_cancel_reg, fd),
    CORING_ABI_FIELD(SyncCancelReg, flags, io_uring_sync_cancel_reg, flags),
    CORING_ABI_FIELD(SyncCancelReg, timeout, io_uring_sync_cancel_reg, timeout),
    CORING_ABI_RENAMED(SyncCancelReg, opcode, io_uring_sync_cancel_reg, opcode, pad),
    CORING_ABI_SIZE(FileIndexRange, io_uring_file_index_range),
    CORING_ABI_FIELD(FileIndexRange, off, io_uring_file_index_range, off),
    CORING_ABI_FIELD(FileIndexRange, len, io_uring_file_index_range, len),
    CORING_ABI_FIELD(FileIndexRange, resv, io_uring_file_index_range, resv),
    CORING_ABI_SIZE(RecvmsgOut, io_uring_recvmsg_out),
    CORING_ABI_FIELD(RecvmsgOut, namelen, io_uring_recvmsg_out, namelen),
    CORING_ABI_FIELD(RecvmsgOut, controllen, io_uring_recvmsg_out, controllen),
    CORING_ABI_FIELD(RecvmsgOut, payloadlen, io_uring_recvmsg_out, payloadlen),
    CORING_ABI_FIELD(RecvmsgOut, flags, io_uring_recvmsg_out, flags),
    CORING_ABI_SIZE(KernelTimespec, __kernel_timespec),
    CORING_ABI_FIELD(KernelTimespec, tv_sec, __kernel_timespec, tv_sec),
    CORING_ABI_FIELD(KernelTimespec, tv_nsec, __kernel_timespec, tv_nsec),
};
static_assert(first_mismatch(kArgumentLayouts) == std::size(kArgumentLayouts),
              "an argument struct differs");

// One futex of a waitv (<linux/futex.h>, 5.16).
constexpr AbiPair kFutexWaitvLayout[] = {
    CORING_ABI_SIZE(FutexWaitv, futex_waitv),
    CORING_ABI_FIELD(FutexWaitv, val, futex_waitv, val),
    CORING_ABI_FIELD(FutexWaitv, uaddr, futex_waitv, uaddr),
    CORING_ABI_FIELD(FutexWaitv, flags, futex_waitv, flags),
    CORING_ABI_FIELD(FutexWaitv, reserved, futex_waitv, __reserved),
};
static_assert(first_mismatch(kFutexWaitvLayout) == std::size(kFutexWaitvLayout),
              "FutexWaitv differs from futex_waitv");

TEST(RingAbi, OpcodesMatchKernelHeader) {
  expect_all_equal(kOps);
  EXPECT_LE(static_cast<unsigned>(IORING_OP_LAST), static_cast<unsigned>(Op::last));
}
TEST(RingAbi, SqeFlagsMatchKernelHeader) { expect_all_equal(kSqeFlags); }
TEST(RingAbi, SetupFlagsMatchKernelHeader) { expect_all_equal(kSetupFlags); }
TEST(RingAbi, EnterFlagsMatchKernelHeader) { expect_all_equal(kEnterFlags); }
TEST(RingAbi, FeatureFlagsMatchKernelHeader) { expect_all_equal(kFeatures); }
TEST(RingAbi, RingFlagsMatchKernelHeader) { expect_all_equal(kRingFlags); }
TEST(RingAbi, CqeFlagsMatchKernelHeader) { expect_all_equal(kCqeFlags); }
TEST(RingAbi, MmapOffsetsMatchKernelHeader) { expect_all_equal(kMmapOffsets); }
TEST(RingAbi, RegisterOpcodesMatchKernelHeader) {
  expect_all_equal(kRegisterOps);
  EXPECT_LE(static_cast<unsigned>(IORING_REGISTER_LAST), static_cast<unsigned>(RegisterOp::last));
}
TEST(RingAbi, RestrictionOpcodesMatchKernelHeader) { expect_all_equal(kRestrictions); }
TEST(RingAbi, OperationFlagsMatchKernelHeader) { expect_all_equal(kOperationFlags); }
TEST(RingAbi, ResourceConstantsMatchKernelHeader) { expect_all_equal(kResourceConstants); }
TEST(RingAbi, FutexConstantsMatchKernelHeader) { expect_all_equal(kFutexConstants); }
TEST(RingAbi, SqeLayoutMatchesKernelHeader) { expect_all_equal(kSqeLayout); }
TEST(RingAbi, CqeLayoutMatchesKernelHeader) { expect_all_equal(kCqeLayout); }
TEST(RingAbi, ParamsLayoutMatchesKernelHeader) { expect_all_equal(kParamsLayout); }
TEST(RingAbi, RingOffsetsLayoutMatchesKernelHeader) { expect_all_equal(kRingOffsetsLayout); }
TEST(RingAbi, RsrcLayoutsMatchKernelHeader) { expect_all_equal(kRsrcLayouts); }
TEST(RingAbi, ProbeAndRestrictionLayoutsMatchKernelHeader) { expect_all_equal(kProbeLayouts); }
TEST(RingAbi, BufRingLayoutsMatchKernelHeader) { expect_all_equal(kBufRingLayouts); }
TEST(RingAbi, ArgumentLayoutsMatchKernelHeader) { expect_all_equal(kArgumentLayouts); }
TEST(RingAbi, FutexWaitvLayoutMatchesKernelHeader) { expect_all_equal(kFutexWaitvLayout); }

}  // namespace
}  // namespace coring::ring::test
