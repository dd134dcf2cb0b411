// Running the real programs that tests talk to (curl, openssl, python3, ...): a command
// through sh with its exit status and output, and a skip, naming the Debian package, when
// the program is not installed (scripts/install-deps.sh installs them all).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace coring::test {

// Runs `command` through sh; its exit status (-1 if it did not exit) and what it wrote to
// stdout and stderr.
struct Ran {
  int status = -1;
  std::string output;
};
inline Ran run_command(const std::string& command) {
  Ran result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char chunk[4096];
  std::size_t got = 0;
  while ((got = std::fread(chunk, 1, sizeof(chunk), pipe)) > 0) result.output.append(chunk, got);
  const int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

inline bool program_installed(const char* program) {
  return run_command(std::string("command -v ") + program + " >/dev/null").status == 0;
}

}  // namespace coring::test

#define REQUIRE_PROGRAM(program, package)                                         \
  do {                                                                            \
    if (!::coring::test::program_installed(program)) {                            \
      GTEST_SKIP() << program << " is not installed (apt-get install " << package \
                   << "; scripts/install-deps.sh installs it)";                   \
    }                                                                             \
  } while (false)
