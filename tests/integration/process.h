// Running the real binaries and independent clients from tests.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace ocsp::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs argv[0] (searched in PATH) to completion, with a time limit.
CommandResult Run(const std::vector<std::string>& argv,
                  std::chrono::seconds timeout = std::chrono::seconds(60));

// A child process that runs until Stop() or destruction (SIGTERM, then SIGKILL).
class Background {
 public:
  Background(const std::vector<std::string>& argv, const std::filesystem::path& log);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  // Waits until the log contains `needle`; returns the log. Throws if the process dies or time runs out.
  std::string WaitForLog(const std::string& needle, std::chrono::seconds timeout = std::chrono::seconds(20));
  // SIGTERM, wait; returns the exit status (or -1 when it had to be killed).
  int Stop();
  // SIGKILL, wait: no chance to clean up.
  void Kill();
  // Sends `signal` (e.g. SIGHUP) and returns at once.
  void Signal(int signal);
  [[nodiscard]] bool Running();
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::filesystem::path log_;
};

std::string ReadText(const std::filesystem::path& path);

}  // namespace ocsp::testing
