// Prep helpers: fill an SQE for one operation.
//
// Each prep_* overwrites every field of the SQE except user_data, so a slot from
// Ring::get_sqe() needs no clearing first; set user_data (and any flag helper at
// the bottom of this file) before submitting. Names and argument orders follow
// liburing's io_uring_prep_*; each notes the kernel version that added the op.
//
// Memory passed by pointer (buffers, iovecs, sockaddrs, timespecs, msghdrs, paths)
// must stay valid until the operation's CQE is reaped, unless noted otherwise:
// the kernel may read it at any time until then (feat::submit_stable only
// promises that for data copied at submission).
#pragma once

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "coring/ring/abi.hpp"

namespace coring::ring {

namespace detail {
inline std::uint64_t to_u64(const void* p) noexcept { return reinterpret_cast<std::uint64_t>(p); }
}  // namespace detail

// The common layout of most operations. Matches io_uring_prep_rw() in liburing.
inline void prep_rw(Sqe& sqe, Op op, int fd, const void* addr, std::uint32_t len,
                    std::uint64_t offset) noexcept {
  sqe.opcode = static_cast<std::uint8_t>(op);
  sqe.flags = 0;
  sqe.ioprio = 0;
  sqe.fd = fd;
  sqe.off = offset;
  sqe.addr = detail::to_u64(addr);
  sqe.len = len;
  sqe.op_flags = 0;
  sqe.buf_index = 0;
  sqe.personality = 0;
  sqe.file_index = 0;
  sqe.addr3 = 0;
  sqe.pad2 = 0;
}

// --- Generic ---------------------------------------------------------------------------------

// A no-op: completes with res 0. Useful as a drained barrier or to wake the loop.
inline void prep_nop(Sqe& sqe) noexcept { prep_rw(sqe, Op::nop, -1, nullptr, 0, 0); }

// --- Read and write ----------------------------------------------------------------------------
// offset (u64)-1 means "the file's current position" (feat::rw_cur_pos).
inline constexpr std::uint64_t current_position = ~std::uint64_t{0};

inline void prep_read(Sqe& sqe, int fd, std::span<std::byte> buffer,
                      std::uint64_t offset) noexcept {
  prep_rw(sqe, Op::read, fd, buffer.data(), static_cast<std::uint32_t>(buffer.size()), offset);
}
inline void prep_write(Sqe& sqe, int fd, std::span<const std::byte> buffer,
                       std::uint64_t offset) noexcept {
  prep_rw(sqe, Op::write, fd, buffer.data(), static_cast<std::uint32_t>(buffer.size()), offset);
}
// preadv2/pwritev2: rw_flags are RWF_*.
inline void prep_readv(Sqe& sqe, int fd, std::span<const iovec> iovecs, std::uint64_t offset,
                       std::uint32_t rw_flags = 0) noexcept {
  prep_rw(sqe, Op::readv, fd, iovecs.data(), static_cast<std::uint32_t>(iovecs.size()), offset);
  sqe.op_flags = rw_flags;
}
inline void prep_writev(Sqe& sqe, int fd, std::span<const iovec> iovecs, std::uint64_t offset,
                        std::uint32_t rw_flags = 0) noexcept {
  prep_rw(sqe, Op::writev, fd, iovecs.data(), static_cast<std::uint32_t>(iovecs.size()), offset);
  sqe.op_flags = rw_flags;
}
// Read into a buffer the kernel picks from provided-buffer group `group_id` (5.7);
// the CQE names it (Cqe::buffer_id()).
inline void prep_read_buffer_select(Sqe& sqe, int fd, std::uint16_t group_id, std::uint32_t len,
                                    std::uint64_t offset) noexcept {
  prep_rw(sqe, Op::read, fd, nullptr, len, offset);
  sqe.flags = sqe_flags::buffer_select;
  sqe.buf_index = group_id;
}
// Read into `buffer`, which lies inside registered buffer `buf_index`.
inline void prep_read_fixed(Sqe& sqe, int fd, std::span<std::byte> buffer, std::uint64_t offset,
                            std::uint16_t buf_index) noexcept {
  prep_rw(sqe, Op::read_fixed, fd, buffer.data(), static_cast<std::uint32_t>(buffer.size()),
          offset);
  sqe.buf_index = buf_index;
}
inline void prep_write_fixed(Sqe& sqe, int fd, std::span<const std::byte> buffer,
                             std::uint64_t offset, std::uint16_t buf_index) noexcept {
  prep_rw(sqe, Op::write_fixed, fd, buffer.data(), static_cast<std::uint32_t>(buffer.size()),
          offset);
  sqe.buf_index = buf_index;
}
// Multishot read from a pollable fd into provided buffers (6.7).
inline void prep_read_multishot(Sqe& sqe, int fd, std::uint32_t len, std::uint64_t offset,
                                std::uint16_t group_id) noexcept {
  prep_rw(sqe, Op::read_multishot, fd, nullptr, len, offset);
  sqe.flags = sqe_flags::buffer_select;
  sqe.buf_index = group_id;
}

// fsync(2); flags may be fsync_datasync for fdatasync(2).
inline void prep_fsync(Sqe& sqe, int fd, std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::fsync, fd, nullptr, 0, 0);
  sqe.op_flags = flags;
}
inline void prep_sync_file_range(Sqe& sqe, int fd, std::uint32_t len, std::uint64_t offset,
                                 std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::sync_file_range, fd, nullptr, len, offset);
  sqe.op_flags = flags;
}
inline void prep_fallocate(Sqe& sqe, int fd, int mode, std::uint64_t offset,
                           std::uint64_t len) noexcept {
  // The kernel takes the length in addr and the mode in len.
  prep_rw(sqe, Op::fallocate, fd, nullptr, static_cast<std::uint32_t>(mode), offset);
  sqe.addr = len;
}
inline void prep_fadvise(Sqe& sqe, int fd, std::uint64_t offset, std::uint32_t len,
                         int advice) noexcept {
  prep_rw(sqe, Op::fadvise, fd, nullptr, len, offset);
  sqe.op_flags = static_cast<std::uint32_t>(advice);
}
inline void prep_madvise(Sqe& sqe, void* addr, std::uint32_t len, int advice) noexcept {
  prep_rw(sqe, Op::madvise, -1, addr, len, 0);
  sqe.op_flags = static_cast<std::uint32_t>(advice);
}
// ftruncate(2) (6.9).
inline void prep_ftruncate(Sqe& sqe, int fd, std::uint64_t length) noexcept {
  prep_rw(sqe, Op::ftruncate, fd, nullptr, 0, length);
}

// splice(2): one of fd_in, fd_out must be a pipe; an offset of (u64)-1 on a non-pipe
// uses and advances the file position, and must be (u64)-1 for a pipe.
inline void prep_splice(Sqe& sqe, int fd_in, std::uint64_t off_in, int fd_out,
                        std::uint64_t off_out, std::uint32_t len,
                        std::uint32_t splice_flags = 0) noexcept {
  prep_rw(sqe, Op::splice, fd_out, nullptr, len, off_out);
  sqe.addr = off_in;                                   // splice_off_in
  sqe.file_index = static_cast<std::uint32_t>(fd_in);  // splice_fd_in
  sqe.op_flags = splice_flags;
}
inline void prep_tee(Sqe& sqe, int fd_in, int fd_out, std::uint32_t len,
                     std::uint32_t splice_flags = 0) noexcept {
  prep_rw(sqe, Op::tee, fd_out, nullptr, len, 0);
  sqe.file_index = static_cast<std::uint32_t>(fd_in);
  sqe.op_flags = splice_flags;
}

// --- Sockets -------------------------------------------------------------------------------------

// accept4(2); flags are SOCK_* (SOCK_CLOEXEC is the caller's to pass).
inline void prep_accept(Sqe& sqe, int fd, sockaddr* addr, socklen_t* addrlen,
                        std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::accept, fd, addr, 0, detail::to_u64(addrlen));
  sqe.op_flags = flags;
}
// One SQE, one CQE per connection while Cqe::has_more() (5.19).
inline void prep_multishot_accept(Sqe& sqe, int fd, sockaddr* addr, socklen_t* addrlen,
                                  std::uint32_t flags) noexcept {
  prep_accept(sqe, fd, addr, addrlen, flags);
  sqe.ioprio |= accept_flags::multishot;
}
// Accept into the registered file table (5.19); file_index_alloc lets the kernel choose
// the slot and return it in res.
inline void prep_accept_direct(Sqe& sqe, int fd, sockaddr* addr, socklen_t* addrlen,
                               std::uint32_t flags, std::uint32_t file_index) noexcept {
  prep_accept(sqe, fd, addr, addrlen, flags);
  // The kernel stores slot + 1 so that 0 means "not direct"; alloc is passed as is.
  sqe.file_index = file_index == file_index_alloc ? file_index : file_index + 1;
}
inline void prep_multishot_accept_direct(Sqe& sqe, int fd, sockaddr* addr, socklen_t* addrlen,
                                         std::uint32_t flags) noexcept {
  prep_multishot_accept(sqe, fd, addr, addrlen, flags);
  sqe.file_index = file_index_alloc;
}
inline void prep_connect(Sqe& sqe, int fd, const sockaddr* addr, socklen_t addrlen) noexcept {
  prep_rw(sqe, Op::connect, fd, addr, 0, addrlen);
}
// bind(2) and listen(2) (6.11).
inline void prep_bind(Sqe& sqe, int fd, const sockaddr* addr, socklen_t addrlen) noexcept {
  prep_rw(sqe, Op::bind, fd, addr, 0, addrlen);
}
inline void prep_listen(Sqe& sqe, int fd, int backlog) noexcept {
  prep_rw(sqe, Op::listen, fd, nullptr, static_cast<std::uint32_t>(backlog), 0);
}
inline void prep_recv(Sqe& sqe, int fd, std::span<std::byte> buffer, int msg_flags) noexcept {
  prep_rw(sqe, Op::recv, fd, buffer.data(), static_cast<std::uint32_t>(buffer.size()), 0);
  sqe.op_flags = static_cast<std::uint32_t>(msg_flags);
}
// recv into a buffer the kernel picks from group `group_id`; len 0 means the buffer's size.
inline void prep_recv_buffer_select(Sqe& sqe, int fd, std::uint16_t group_id, std::uint32_t len,
                                    int msg_flags) noexcept {
  prep_rw(sqe, Op::recv, fd, nullptr, len, 0);
  sqe.op_flags = static_cast<std::uint32_t>(msg_flags);
  sqe.flags = sqe_flags::buffer_select;
  sqe.buf_index = group_id;
}
// Multishot recv into provided buffers (6.0): a CQE per chunk while has_more().
inline void prep_recv_multishot(Sqe& sqe, int fd, std::uint16_t group_id, int msg_flags) noexcept {
  prep_recv_buffer_select(sqe, fd, group_id, 0, msg_flags);
  sqe.ioprio |= recvsend_flags::recv_multishot;
}
// With a limit (6.17): the kernel ends the multishot receive (a CQE without F_MORE)
// once it has received `total_bytes` in all; it counts them down as an int, so keep
// `total_bytes` at most INT_MAX. Before 6.17 the field is file_index, which a receive
// must leave 0: the request fails with EINVAL.
inline void prep_recv_multishot(Sqe& sqe, int fd, std::uint16_t group_id, int msg_flags,
                                std::uint32_t total_bytes) noexcept {
  prep_recv_multishot(sqe, fd, group_id, msg_flags);
  sqe.file_index = total_bytes;  // optlen
}
inline void prep_send(Sqe& sqe, int fd, std::span<const std::byte> buffer, int msg_flags) noexcept {
  prep_rw(sqe, Op::send, fd, buffer.data(), static_cast<std::uint32_t>(buffer.size()), 0);
  sqe.op_flags = static_cast<std::uint32_t>(msg_flags);
}
// Zero-copy send (6.0): usually two CQEs, the result (with has_more()) and a notification
// (cqe_flags::notif) after which `buffer` may be reused. zc_flags are recvsend_flags.
inline void prep_send_zc(Sqe& sqe, int fd, std::span<const std::byte> buffer, int msg_flags,
                         std::uint16_t zc_flags) noexcept {
  prep_rw(sqe, Op::send_zc, fd, buffer.data(), static_cast<std::uint32_t>(buffer.size()), 0);
  sqe.op_flags = static_cast<std::uint32_t>(msg_flags);
  sqe.ioprio = zc_flags;
}
// Zero-copy send from registered buffer `buf_index` (6.0).
inline void prep_send_zc_fixed(Sqe& sqe, int fd, std::span<const std::byte> buffer, int msg_flags,
                               std::uint16_t zc_flags, std::uint16_t buf_index) noexcept {
  prep_send_zc(sqe, fd, buffer, msg_flags, zc_flags);
  sqe.ioprio |= recvsend_flags::fixed_buf;
  sqe.buf_index = buf_index;
}
// send to an explicit destination (sendto(2)), 6.0.
inline void prep_send_set_addr(Sqe& sqe, const sockaddr* dest, socklen_t addrlen) noexcept {
  sqe.off = detail::to_u64(dest);  // addr2
  sqe.file_index = addrlen;        // addr_len in the low 16 bits
}
inline void prep_recvmsg(Sqe& sqe, int fd, msghdr* msg, std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::recvmsg, fd, msg, 1, 0);
  sqe.op_flags = flags;
}
// Multishot recvmsg (6.0): each buffer starts with a RecvmsgOut header.
inline void prep_recvmsg_multishot(Sqe& sqe, int fd, msghdr* msg, std::uint16_t group_id,
                                   std::uint32_t flags) noexcept {
  prep_recvmsg(sqe, fd, msg, flags);
  sqe.flags = sqe_flags::buffer_select;
  sqe.buf_index = group_id;
  sqe.ioprio |= recvsend_flags::recv_multishot;
}
inline void prep_sendmsg(Sqe& sqe, int fd, const msghdr* msg, std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::sendmsg, fd, msg, 1, 0);
  sqe.op_flags = flags;
}
// Zero-copy sendmsg (6.1); notification as for prep_send_zc.
inline void prep_sendmsg_zc(Sqe& sqe, int fd, const msghdr* msg, std::uint32_t flags) noexcept {
  prep_sendmsg(sqe, fd, msg, flags);
  sqe.opcode = static_cast<std::uint8_t>(Op::sendmsg_zc);
}
inline void prep_shutdown(Sqe& sqe, int fd, int how) noexcept {
  prep_rw(sqe, Op::shutdown, fd, nullptr, static_cast<std::uint32_t>(how), 0);
}
// socket(2) (5.19); flags are reserved (0).
inline void prep_socket(Sqe& sqe, int domain, int type, int protocol,
                        std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::socket, domain, nullptr, static_cast<std::uint32_t>(protocol),
          static_cast<std::uint64_t>(type));
  sqe.op_flags = flags;
}
// A socket installed at registered slot `file_index`.
inline void prep_socket_direct(Sqe& sqe, int domain, int type, int protocol, std::uint32_t flags,
                               std::uint32_t file_index) noexcept {
  prep_socket(sqe, domain, type, protocol, flags);
  sqe.file_index = file_index == file_index_alloc ? file_index : file_index + 1;
}
// A socket in a registered slot the kernel picks and returns in res.
inline void prep_socket_direct_alloc(Sqe& sqe, int domain, int type, int protocol,
                                     std::uint32_t flags) noexcept {
  prep_socket(sqe, domain, type, protocol, flags);
  sqe.file_index = file_index_alloc;
}
// A socket command through Op::uring_cmd (6.7): getsockopt/setsockopt and friends.
inline void prep_cmd_sock(Sqe& sqe, SocketOp cmd, int fd, int level, int optname, void* optval,
                          int optlen) noexcept {
  prep_rw(sqe, Op::uring_cmd, fd, nullptr, 0, 0);
  sqe.off = static_cast<std::uint32_t>(cmd);  // cmd_op: low 32 bits of off
  // level in the low 32 bits of addr, optname in the high 32 bits.
  sqe.addr = static_cast<std::uint32_t>(level) |
             (static_cast<std::uint64_t>(static_cast<std::uint32_t>(optname)) << 32);
  sqe.addr3 = detail::to_u64(optval);                   // optval
  sqe.file_index = static_cast<std::uint32_t>(optlen);  // optlen
}
inline void prep_setsockopt(Sqe& sqe, int fd, int level, int optname,
                            std::span<const std::byte> value) noexcept {
  prep_cmd_sock(sqe, SocketOp::setsockopt, fd, level, optname, const_cast<std::byte*>(value.data()),
                static_cast<int>(value.size()));
}
// On success res is the option's length, and `value` holds it.
inline void prep_getsockopt(Sqe& sqe, int fd, int level, int optname,
                            std::span<std::byte> value) noexcept {
  prep_cmd_sock(sqe, SocketOp::getsockopt, fd, level, optname, value.data(),
                static_cast<int>(value.size()));
}
// epoll_ctl(2) (5.6).
inline void prep_epoll_ctl(Sqe& sqe, int epfd, int fd, int op, epoll_event* event) noexcept {
  prep_rw(sqe, Op::epoll_ctl, epfd, event, static_cast<std::uint32_t>(op),
          static_cast<std::uint64_t>(fd));
}

// --- Files and paths ----------------------------------------------------------------------------

// openat(2); pass O_CLOEXEC in flags (coring's own callers always do).
inline void prep_openat(Sqe& sqe, int dfd, const char* path, int flags, mode_t mode) noexcept {
  prep_rw(sqe, Op::openat, dfd, path, mode, 0);
  sqe.op_flags = static_cast<std::uint32_t>(flags);
}
// openat into registered slot `file_index` (5.15), or file_index_alloc (5.19).
inline void prep_openat_direct(Sqe& sqe, int dfd, const char* path, int flags, mode_t mode,
                               std::uint32_t file_index) noexcept {
  prep_openat(sqe, dfd, path, flags, mode);
  sqe.file_index = file_index == file_index_alloc ? file_index : file_index + 1;
}
// openat2(2) (5.6): `how` (flags with O_CLOEXEC, mode, resolve_flags) must stay valid
// until the CQE. Matches io_uring_prep_openat2() in liburing.
inline void prep_openat2(Sqe& sqe, int dfd, const char* path, const OpenHow* how) noexcept {
  prep_rw(sqe, Op::openat2, dfd, path, sizeof(OpenHow), detail::to_u64(how));
}
inline void prep_close(Sqe& sqe, int fd) noexcept { prep_rw(sqe, Op::close, fd, nullptr, 0, 0); }
// Closes registered slot `file_index` (5.15).
inline void prep_close_direct(Sqe& sqe, std::uint32_t file_index) noexcept {
  prep_close(sqe, 0);
  sqe.file_index = file_index + 1;
}
// Installs registered slot `fixed_index` as a normal fd, returned in res (6.8).
inline void prep_fixed_fd_install(Sqe& sqe, int fixed_index, std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::fixed_fd_install, fixed_index, nullptr, 0, 0);
  sqe.flags = sqe_flags::fixed_file;
  sqe.op_flags = flags;
}
// Updates registered files from an SQE (5.6); offset file_index_alloc allocates slots.
inline void prep_files_update(Sqe& sqe, std::span<int> fds, int offset) noexcept {
  prep_rw(sqe, Op::files_update, -1, fds.data(), static_cast<std::uint32_t>(fds.size()),
          static_cast<std::uint64_t>(offset));
}
inline void prep_statx(Sqe& sqe, int dfd, const char* path, int flags, unsigned mask,
                       struct statx* buf) noexcept {
  prep_rw(sqe, Op::statx, dfd, path, mask, detail::to_u64(buf));
  sqe.op_flags = static_cast<std::uint32_t>(flags);
}
inline void prep_renameat(Sqe& sqe, int old_dfd, const char* old_path, int new_dfd,
                          const char* new_path, unsigned flags) noexcept {
  prep_rw(sqe, Op::renameat, old_dfd, old_path, static_cast<std::uint32_t>(new_dfd),
          detail::to_u64(new_path));
  sqe.op_flags = flags;
}
inline void prep_unlinkat(Sqe& sqe, int dfd, const char* path, int flags) noexcept {
  prep_rw(sqe, Op::unlinkat, dfd, path, 0, 0);
  sqe.op_flags = static_cast<std::uint32_t>(flags);
}
inline void prep_mkdirat(Sqe& sqe, int dfd, const char* path, mode_t mode) noexcept {
  prep_rw(sqe, Op::mkdirat, dfd, path, mode, 0);
}
inline void prep_symlinkat(Sqe& sqe, const char* target, int new_dfd,
                           const char* link_path) noexcept {
  prep_rw(sqe, Op::symlinkat, new_dfd, target, 0, detail::to_u64(link_path));
}
inline void prep_linkat(Sqe& sqe, int old_dfd, const char* old_path, int new_dfd,
                        const char* new_path, int flags) noexcept {
  prep_rw(sqe, Op::linkat, old_dfd, old_path, static_cast<std::uint32_t>(new_dfd),
          detail::to_u64(new_path));
  sqe.op_flags = static_cast<std::uint32_t>(flags);
}

// --- Time, polling, cancellation -----

// Completes with -ETIME when `ts` passes, or with 0 once `count` other CQEs have been
// posted (count 0: time only). flags: timeout_flags (abs, boottime, realtime, multishot).
inline void prep_timeout(Sqe& sqe, const KernelTimespec* ts, std::uint32_t count,
                         std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::timeout, -1, ts, 1, count);
  sqe.op_flags = flags;
}
// Removes the timeout whose user_data is `target`: res 0, -EBUSY (already firing) or -ENOENT.
inline void prep_timeout_remove(Sqe& sqe, std::uint64_t target, std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::timeout_remove, -1, nullptr, 0, 0);
  sqe.addr = target;
  sqe.op_flags = flags;
}
// Re-arms the timeout `target` with `ts` (5.11).
inline void prep_timeout_update(Sqe& sqe, const KernelTimespec* ts, std::uint64_t target,
                                std::uint32_t flags) noexcept {
  prep_timeout_remove(sqe, target, flags | timeout_flags::update);
  sqe.off = detail::to_u64(ts);
}
// Bounds the SQE before it, which must carry sqe_flags::io_link: -ETIME here and
// -ECANCELED there if time runs out, else -ECANCELED (or -EALREADY) here.
inline void prep_link_timeout(Sqe& sqe, const KernelTimespec* ts, std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::link_timeout, -1, ts, 1, 0);
  sqe.op_flags = flags;
}
// poll(2) for `poll_mask` (POLLIN, ...); res is the ready mask.
inline void prep_poll_add(Sqe& sqe, int fd, std::uint32_t poll_mask) noexcept {
  prep_rw(sqe, Op::poll_add, fd, nullptr, 0, 0);
  sqe.op_flags = poll_mask;  // poll32_events
}
// Multishot poll (5.13): a CQE per readiness change while has_more().
inline void prep_poll_multishot(Sqe& sqe, int fd, std::uint32_t poll_mask) noexcept {
  prep_poll_add(sqe, fd, poll_mask);
  sqe.len = poll_flags::add_multi;
}
inline void prep_poll_remove(Sqe& sqe, std::uint64_t target) noexcept {
  prep_rw(sqe, Op::poll_remove, -1, nullptr, 0, 0);
  sqe.addr = target;
}
// Updates poll `old_user_data`: flags poll_flags::update_events / update_user_data.
inline void prep_poll_update(Sqe& sqe, std::uint64_t old_user_data, std::uint64_t new_user_data,
                             std::uint32_t poll_mask, std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::poll_remove, -1, nullptr, flags, new_user_data);
  sqe.addr = old_user_data;
  sqe.op_flags = poll_mask;
}
// Cancels the request whose user_data is `target`: res 0, -EALREADY (running) or -ENOENT.
// flags: cancel_flags (all, any, fd, ...).
inline void prep_cancel(Sqe& sqe, std::uint64_t target, std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::async_cancel, -1, nullptr, 0, 0);
  sqe.addr = target;
  sqe.op_flags = flags;
}
// Cancels requests on `fd` (5.19); pass cancel_flags::all to cancel every one.
inline void prep_cancel_fd(Sqe& sqe, int fd, std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::async_cancel, fd, nullptr, 0, 0);
  sqe.op_flags = flags | cancel_flags::fd;
}

// --- Provided buffers (legacy, per-SQE), processes, rings -----

// Hands `count` buffers of `size` bytes, contiguous from `addr`, to group `group_id`
// with ids from `first_id`.
inline void prep_provide_buffers(Sqe& sqe, void* addr, std::uint32_t size, std::uint32_t count,
                                 std::uint16_t group_id, std::uint32_t first_id) noexcept {
  prep_rw(sqe, Op::provide_buffers, static_cast<int>(count), addr, size, first_id);
  sqe.buf_index = group_id;
}
inline void prep_remove_buffers(Sqe& sqe, std::uint32_t count, std::uint16_t group_id) noexcept {
  prep_rw(sqe, Op::remove_buffers, static_cast<int>(count), nullptr, 0, 0);
  sqe.buf_index = group_id;
}
// waitid(2) (6.7).
inline void prep_waitid(Sqe& sqe, idtype_t id_type, id_t id, siginfo_t* info, int options,
                        std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::waitid, static_cast<int>(id), nullptr, static_cast<std::uint32_t>(id_type), 0);
  sqe.op_flags = flags;
  sqe.file_index = static_cast<std::uint32_t>(options);
  sqe.off = detail::to_u64(info);  // addr2
}
// Posts a CQE with `res` = len and `user_data` = data on ring `ring_fd` (5.18).
inline void prep_msg_ring(Sqe& sqe, int ring_fd, std::uint32_t len, std::uint64_t data,
                          std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::msg_ring, ring_fd, nullptr, len, data);
  sqe.addr = msg_ring::data;
  sqe.op_flags = flags;
}
// Like prep_msg_ring, and sets the target CQE's flags (msg_ring::flags_pass, 6.3).
inline void prep_msg_ring_cqe_flags(Sqe& sqe, int ring_fd, std::uint32_t len, std::uint64_t data,
                                    std::uint32_t flags, std::uint32_t cqe_flags) noexcept {
  prep_msg_ring(sqe, ring_fd, len, data, flags | msg_ring::flags_pass);
  sqe.file_index = cqe_flags;
}
// Sends our registered file `source_index` to registered slot `target_index` of ring
// `ring_fd` (6.0); file_index_alloc lets the target pick. `data` is the target CQE's user_data.
inline void prep_msg_ring_fd(Sqe& sqe, int ring_fd, int source_index, std::uint32_t target_index,
                             std::uint64_t data, std::uint32_t flags) noexcept {
  prep_rw(sqe, Op::msg_ring, ring_fd, nullptr, 0, data);
  sqe.addr = msg_ring::send_fd;
  sqe.addr3 = static_cast<std::uint64_t>(source_index);
  sqe.file_index = target_index == file_index_alloc ? target_index : target_index + 1;
  sqe.op_flags = flags;
}

// --- Futexes (6.7) -----
// futex2_flags are futex2:: flags (size_u32, and private_flag for a futex that only this
// process uses); `flags` is reserved, 0. `mask` is a bitset (futex_bitset_match_any for
// all): a wake wakes only waiters whose mask shares a bit with its own, and a mask of 0
// fails with -EINVAL.

// Waits while the futex at `futex` holds `expected`: res 0 once a wake reaches it,
// -EAGAIN at once if the futex holds another value. Matches io_uring_prep_futex_wait().
inline void prep_futex_wait(Sqe& sqe, const std::uint32_t* futex, std::uint64_t expected,
                            std::uint64_t mask, std::uint32_t futex2_flags,
                            std::uint32_t flags = 0) noexcept {
  prep_rw(sqe, Op::futex_wait, static_cast<int>(futex2_flags), futex, 0, expected);
  sqe.op_flags = flags;  // futex_flags
  sqe.addr3 = mask;
}
// Wakes at most `count` waiters on the futex at `futex`, whether they wait through a ring
// or futex(2): res is the number woken. Matches io_uring_prep_futex_wake().
inline void prep_futex_wake(Sqe& sqe, const std::uint32_t* futex, std::uint64_t count,
                            std::uint64_t mask, std::uint32_t futex2_flags,
                            std::uint32_t flags = 0) noexcept {
  prep_rw(sqe, Op::futex_wake, static_cast<int>(futex2_flags), futex, 0, count);
  sqe.op_flags = flags;  // futex_flags
  sqe.addr3 = mask;
}
// Waits on up to futex_waitv_max futexes at once: res is the index in `waiters` of the
// one that was woken, or -EAGAIN at once if any futex does not hold its `val`. Each
// waiter carries its own futex2 flags. Matches io_uring_prep_futex_waitv().
inline void prep_futex_waitv(Sqe& sqe, std::span<const FutexWaitv> waiters,
                             std::uint32_t flags = 0) noexcept {
  prep_rw(sqe, Op::futex_waitv, 0, waiters.data(), static_cast<std::uint32_t>(waiters.size()), 0);
  sqe.op_flags = flags;  // futex_flags
}

// --- SQE flag helpers -----

// The next SQE starts only if this one succeeds (a short read/write counts as failure).
inline void link_next(Sqe& sqe) noexcept { sqe.flags |= sqe_flags::io_link; }
// The next SQE starts when this one completes, whatever its result.
inline void hard_link_next(Sqe& sqe) noexcept { sqe.flags |= sqe_flags::io_hardlink; }
// Starts only after every earlier SQE has completed.
inline void drain_previous(Sqe& sqe) noexcept { sqe.flags |= sqe_flags::io_drain; }
// Goes straight to io-wq instead of trying non-blocking first.
inline void force_async(Sqe& sqe) noexcept { sqe.flags |= sqe_flags::async; }
// The SQE's fd is an index into the registered file table (a direct descriptor), or,
// with `fixed` false, an ordinary fd: for callers that hold either.
inline void use_fixed_file(Sqe& sqe, bool fixed = true) noexcept {
  if (fixed) sqe.flags |= sqe_flags::fixed_file;
}
// Picks a buffer from provided-buffer group `group_id`.
inline void select_buffer(Sqe& sqe, std::uint16_t group_id) noexcept {
  sqe.flags |= sqe_flags::buffer_select;
  sqe.buf_index = group_id;
}
// Posts no CQE if the operation succeeds (feat::cqe_skip, 5.17).
inline void skip_cqe_on_success(Sqe& sqe) noexcept { sqe.flags |= sqe_flags::cqe_skip_success; }
// user_data from a pointer, as the runtime does with its operation records.
inline void set_user_data(Sqe& sqe, const void* pointer) noexcept {
  sqe.user_data = detail::to_u64(pointer);
}

}  // namespace coring::ring
