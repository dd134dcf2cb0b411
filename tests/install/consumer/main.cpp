// Install check: a program built against coring as a user builds it — an installed
// package (this directory) or add_subdirectory() (../subdirectory) — sets up a ring,
// sends one NOP through it and checks the completion, then does the same through the
// runtime (an EventLoop running a Task) and stats "/" through the fs layer. Exits 0 on
// success, 1 on any failure (with the reason on stderr). CORING_CONSUMER_USES names
// how the build found coring.
#include <cstdio>

#include <coring/fs/paths.hpp>
#include <coring/ring/prep.hpp>
#include <coring/ring/ring.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/io.hpp>
#include <coring/runtime/task.hpp>
#if __has_include(<coring/net/tls.hpp>)
#include <coring/net/tls.hpp>
#endif

namespace {
coring::Task<int> nop_through_loop() {
  const coring::IoResult result = co_await coring::nop();
  co_return result.res;
}
// The fs layer: statx of "/" through the ring.
coring::Task<bool> root_is_a_directory() {
  const coring::fs::Result<coring::fs::Stat> root = co_await coring::fs::stat("/");
  co_return root.ok() && root->is_directory();
}
}  // namespace

int main() {
  auto ring = coring::ring::Ring::create(4);
  if (!ring) {
    std::fprintf(stderr, "consumer: ring setup failed: %s\n", ring.error().message().c_str());
    return 1;
  }
  coring::ring::Sqe* sqe = ring->get_sqe();
  if (sqe == nullptr) {
    std::fprintf(stderr, "consumer: no SQE in an empty ring\n");
    return 1;
  }
  coring::ring::prep_nop(*sqe);
  sqe->user_data = 0xC0FFEE;
  if (auto submitted = ring->submit(); !submitted || *submitted != 1) {
    std::fprintf(stderr, "consumer: submit failed: %s\n", submitted.error().message().c_str());
    return 1;
  }
  auto cqe = ring->copy_cqe();
  if (!cqe) {
    std::fprintf(stderr, "consumer: no CQE: %s\n", cqe.error().message().c_str());
    return 1;
  }
  if (cqe->user_data != 0xC0FFEE || cqe->res != 0) {
    std::fprintf(stderr, "consumer: wrong CQE: user_data %#llx, res %d\n",
                 static_cast<unsigned long long>(cqe->user_data), cqe->res);
    return 1;
  }
  coring::EventLoop loop;
  if (const int res = loop.run(nop_through_loop()); res != 0) {
    std::fprintf(stderr, "consumer: NOP through the EventLoop gave res %d\n", res);
    return 1;
  }
  if (!loop.run(root_is_a_directory())) {
    std::fprintf(stderr, "consumer: fs::stat(\"/\") did not find a directory\n");
    return 1;
  }
  std::printf("consumer: fs::stat through " CORING_CONSUMER_USES " OK\n");
#if __has_include(<coring/net/tls.hpp>)
  // coring::tls links OpenSSL privately: a static libcoring_tls needs the package to bring
  // OpenSSL's libraries to this link.
  auto tls = coring::net::TlsContext::client({});
  if (!tls) {
    std::fprintf(stderr, "consumer: a TLS client context: %s\n", tls.message().c_str());
    return 1;
  }
  std::printf("consumer: a TLS client context through " CORING_CONSUMER_USES " OK\n");
#endif
  std::printf("consumer: NOP round trips through " CORING_CONSUMER_USES " (ring and runtime) OK\n");
  return 0;
}
