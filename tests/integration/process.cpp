#include "tests/integration/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace ocsp::testing {
namespace {

pid_t Spawn(const std::vector<std::string>& argv, int output_fd) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(output_fd, STDOUT_FILENO);
    ::dup2(output_fd, STDERR_FILENO);
    const int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, STDIN_FILENO);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

int WaitFor(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() > deadline) return -2;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

CommandResult Run(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  char path[] = "/tmp/ocsp-run-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  const pid_t pid = Spawn(argv, fd);
  ::close(fd);
  CommandResult result;
  result.exit_code = WaitFor(pid, timeout);
  if (result.exit_code == -2) {
    ::kill(pid, SIGKILL);
    WaitFor(pid, std::chrono::seconds(5));
  }
  result.output = ReadText(path);
  ::unlink(path);
  return result;
}

Background::Background(const std::vector<std::string>& argv, const std::filesystem::path& log) : log_(log) {
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) throw std::runtime_error("cannot open " + log.string());
  pid_ = Spawn(argv, fd);
  ::close(fd);
}

Background::~Background() { Stop(); }

bool Background::Running() {
  if (pid_ < 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

std::string Background::WaitForLog(const std::string& needle, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::string text = ReadText(log_);
    if (text.find(needle) != std::string::npos) return text;
    if (!Running()) throw std::runtime_error("process exited before logging '" + needle + "':\n" + text);
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("timed out waiting for '" + needle + "':\n" + text);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void Background::Signal(int signal) {
  if (pid_ >= 0) ::kill(pid_, signal);
}

void Background::Kill() {
  if (pid_ < 0) return;
  ::kill(pid_, SIGKILL);
  WaitFor(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

int Background::Stop() {
  if (pid_ < 0) return 0;
  ::kill(pid_, SIGTERM);
  int status = WaitFor(pid_, std::chrono::seconds(10));
  if (status == -2) {
    ::kill(pid_, SIGKILL);
    WaitFor(pid_, std::chrono::seconds(5));
    status = -1;
  }
  pid_ = -1;
  return status;
}

}  // namespace ocsp::testing
