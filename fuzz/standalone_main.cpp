// A small coverage-guided fuzzing driver for builds where libFuzzer cannot be used (docs/fuzzing.md).
//
// Why it exists: libFuzzer needs clang, and the clang in Debian 12 (14) cannot compile this project: libstdc++'s
// <expected> requires __cpp_concepts >= 202002L, which clang only reports from version 19. So the fuzz build
// uses g++ with ASan + UBSan, and this driver stands in for libFuzzer's main(). The fuzz targets are written
// against libFuzzer's interface (LLVMFuzzerTestOneInput, optional LLVMFuzzerInitialize and
// LLVMFuzzerCustomMutator; LLVMFuzzerMutate is provided here), so they link unchanged with -fsanitize=fuzzer.
//
// Feedback: the code under test is compiled with GCC's -fsanitize-coverage=trace-pc,trace-cmp. This file
// implements the callbacks: every basic block reports its address (hashed into AFL-style edge counters, whose
// hit-count buckets are the "features"), and every comparison reports its operands (kept in a table that the
// mutator uses to write the compared-against values into inputs, like libFuzzer's "TORC"). memcmp/strcmp
// operands come through the sanitizers' weak interceptor hooks. An input that reaches a new feature joins the
// corpus. The driver itself is not instrumented.
//
// Command line (a subset of libFuzzer's, so scripts work with either):
//   target [-flag=value ...] [DIR_OR_FILE ...]
//   -max_total_time=S  -runs=N  -seed=N  -max_len=N  -timeout=S  -dict=FILE  -artifact_prefix=PATH
//   DIRs are corpora: all their files are run first; new interesting inputs are written to the first DIR.
//   FILEs only (no DIR): each is run once and the program exits (reproducing a crash).
// Output: libFuzzer-style status lines ("#N NEW cov: C ft: F corp: U/B exec/s: E rss: M Mb") and final
// stat:: lines. A crash (sanitizer report, abort(), a fatal signal) writes the input to
// <artifact_prefix>crash-<hash> first; a hang past -timeout writes timeout-<hash> and exits with status 70.
//
// Thread safety: single-threaded by design; the coverage callbacks assume one thread runs the target.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);
extern "C" __attribute__((weak)) std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size,
                                                                    std::size_t max_size, unsigned int seed);
extern "C" __attribute__((weak)) void __sanitizer_set_death_callback(void (*callback)());

namespace {

using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------------------------------------------
// Coverage
// ------------------------------------------------------------------------------------------------

constexpr std::size_t kEdgeMapSize = std::size_t{1} << 16;
constexpr std::size_t kBlockBits = std::size_t{1} << 22;

std::uint8_t g_edge_hits[kEdgeMapSize];        // this execution's hit counts (saturating)
std::uint32_t g_touched[kEdgeMapSize];         // indices of g_edge_hits that are non-zero
std::size_t g_touched_count = 0;
std::uintptr_t g_previous_block = 0;
std::uint8_t g_blocks_seen[kBlockBits / 8];    // every block ever reached (hashed)
std::size_t g_block_count = 0;
std::uint8_t g_features_seen[kEdgeMapSize];    // per edge: bit b set once hit-count bucket b was reached
std::size_t g_feature_count = 0;
bool g_tracing = false;                        // only the target's own execution counts

inline std::uintptr_t Mix(std::uintptr_t value) {
  value ^= value >> 33;
  value *= 0xff51afd7ed558ccdULL;
  value ^= value >> 33;
  return value;
}

// A table of recent comparisons: (a, b) pairs, of 1-8 octets or up to 32 for memcmp-like calls.
struct Comparison {
  std::uint8_t size = 0;
  std::uint8_t a[32];
  std::uint8_t b[32];
};
constexpr std::size_t kComparisons = 1024;
Comparison g_comparisons[kComparisons];
std::size_t g_comparison_count = 0;

inline void RecordComparison(std::uintptr_t site, const void* a, const void* b, std::size_t size) {
  // Plain loops, not memcmp/memcpy: those are intercepted, and the memcmp hook leads back here.
  if (!g_tracing || size == 0) return;
  if (size > sizeof(Comparison::a)) size = sizeof(Comparison::a);
  const auto* left = static_cast<const std::uint8_t*>(a);
  const auto* right = static_cast<const std::uint8_t*>(b);
  bool equal = true;
  for (std::size_t i = 0; i < size && equal; ++i) equal = left[i] == right[i];
  if (equal) return;  // nothing to learn
  Comparison& slot = g_comparisons[Mix(site ^ (static_cast<std::uintptr_t>(size) << 56) ^ right[0]) % kComparisons];
  slot.size = static_cast<std::uint8_t>(size);
  for (std::size_t i = 0; i < size; ++i) {
    slot.a[i] = left[i];
    slot.b[i] = right[i];
  }
  if (g_comparison_count < kComparisons) ++g_comparison_count;
}

template <typename T>
inline void RecordIntegers(std::uintptr_t site, T a, T b) {
  if (a == b) return;
  RecordComparison(site, &a, &b, sizeof(T));
}

// Hit-count buckets as AFL and libFuzzer use them: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+.
inline unsigned Bucket(std::uint8_t hits) {
  if (hits <= 3) return hits - 1u;
  if (hits < 8) return 3;
  if (hits < 16) return 4;
  if (hits < 32) return 5;
  if (hits < 128) return 6;
  return 7;
}

void StartTrace() {
  for (std::size_t i = 0; i < g_touched_count; ++i) g_edge_hits[g_touched[i]] = 0;
  g_touched_count = 0;
  g_previous_block = 0;
  g_tracing = true;
}

// After an execution: how many features the run reached that no run had reached before (and records them).
std::size_t FinishTrace() {
  g_tracing = false;
  std::size_t added = 0;
  for (std::size_t i = 0; i < g_touched_count; ++i) {
    const std::uint32_t edge = g_touched[i];
    const auto bit = static_cast<std::uint8_t>(1u << Bucket(g_edge_hits[edge]));
    if ((g_features_seen[edge] & bit) == 0) {
      g_features_seen[edge] |= bit;
      ++added;
    }
  }
  g_feature_count += added;
  return added;
}

}  // namespace

// The instrumentation's entry points (GCC's -fsanitize-coverage=trace-pc,trace-cmp; the sanitizers' hooks).
extern "C" {

void __sanitizer_cov_trace_pc() {
  if (!g_tracing) return;
  const std::uintptr_t block = Mix(reinterpret_cast<std::uintptr_t>(__builtin_return_address(0)));
  const std::size_t edge = (block ^ g_previous_block) & (kEdgeMapSize - 1);
  g_previous_block = block >> 1;
  std::uint8_t& hits = g_edge_hits[edge];
  if (hits == 0) g_touched[g_touched_count++] = static_cast<std::uint32_t>(edge);
  if (hits != 255) ++hits;
  const std::size_t bit = block & (kBlockBits - 1);
  if ((g_blocks_seen[bit / 8] & (1u << (bit % 8))) == 0) {
    g_blocks_seen[bit / 8] = static_cast<std::uint8_t>(g_blocks_seen[bit / 8] | (1u << (bit % 8)));
    ++g_block_count;
  }
}

#define OCSP_FUZZ_SITE reinterpret_cast<std::uintptr_t>(__builtin_return_address(0))
void __sanitizer_cov_trace_cmp1(std::uint8_t a, std::uint8_t b) { RecordIntegers(OCSP_FUZZ_SITE, a, b); }
void __sanitizer_cov_trace_cmp2(std::uint16_t a, std::uint16_t b) { RecordIntegers(OCSP_FUZZ_SITE, a, b); }
void __sanitizer_cov_trace_cmp4(std::uint32_t a, std::uint32_t b) { RecordIntegers(OCSP_FUZZ_SITE, a, b); }
void __sanitizer_cov_trace_cmp8(std::uint64_t a, std::uint64_t b) { RecordIntegers(OCSP_FUZZ_SITE, a, b); }
// For const_cmp the first operand is the constant: record it as the value the input should have had.
void __sanitizer_cov_trace_const_cmp1(std::uint8_t a, std::uint8_t b) { RecordIntegers(OCSP_FUZZ_SITE, b, a); }
void __sanitizer_cov_trace_const_cmp2(std::uint16_t a, std::uint16_t b) { RecordIntegers(OCSP_FUZZ_SITE, b, a); }
void __sanitizer_cov_trace_const_cmp4(std::uint32_t a, std::uint32_t b) { RecordIntegers(OCSP_FUZZ_SITE, b, a); }
void __sanitizer_cov_trace_const_cmp8(std::uint64_t a, std::uint64_t b) { RecordIntegers(OCSP_FUZZ_SITE, b, a); }
void __sanitizer_cov_trace_cmpf(float, float) {}
void __sanitizer_cov_trace_cmpd(double, double) {}
// cases[0]: number of cases, cases[1]: bit width, then the case values.
void __sanitizer_cov_trace_switch(std::uint64_t value, std::uint64_t* cases) {
  if (!g_tracing) return;
  for (std::uint64_t i = 0; i < cases[0] && i < 16; ++i) {
    const std::uint64_t wanted = cases[2 + i];
    const std::size_t size = cases[1] <= 8 ? 1 : cases[1] <= 16 ? 2 : cases[1] <= 32 ? 4 : 8;
    if (wanted != value) RecordComparison(OCSP_FUZZ_SITE + i, &value, &wanted, size);
  }
}
void __sanitizer_weak_hook_memcmp(void* site, const void* s1, const void* s2, std::size_t n, int result) {
  if (result != 0 && n >= 2) RecordComparison(reinterpret_cast<std::uintptr_t>(site), s1, s2, n);
}
void __sanitizer_weak_hook_strncmp(void* site, const char* s1, const char* s2, std::size_t n, int result) {
  if (result == 0) return;
  const std::size_t length = std::min({n, std::strlen(s1), std::strlen(s2)});
  if (length >= 2) RecordComparison(reinterpret_cast<std::uintptr_t>(site), s1, s2, length);
}
void __sanitizer_weak_hook_strcmp(void* site, const char* s1, const char* s2, int result) {
  if (result == 0) return;
  const std::size_t length = std::min(std::strlen(s1), std::strlen(s2));
  if (length >= 2) RecordComparison(reinterpret_cast<std::uintptr_t>(site), s1, s2, length);
}
#undef OCSP_FUZZ_SITE

}  // extern "C"

namespace {

// ------------------------------------------------------------------------------------------------
// Mutation (libFuzzer's classic set, plus the comparison table and the dictionary)
// ------------------------------------------------------------------------------------------------

std::mt19937_64 g_random;
std::vector<std::vector<std::uint8_t>> g_dictionary;
std::vector<std::vector<std::uint8_t>> g_corpus;

std::size_t Below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(g_random() % n); }

// Parses a libFuzzer/AFL dictionary: lines of `name="value"` or `"value"`, with \\, \" and \xNN escapes.
bool LoadDictionary(const std::string& path) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    const auto open = line.find('"');
    const auto close = line.rfind('"');
    if (line.empty() || line[0] == '#' || open == std::string::npos || close <= open) continue;
    std::vector<std::uint8_t> token;
    for (std::size_t i = open + 1; i < close; ++i) {
      if (line[i] == '\\' && i + 1 < close) {
        if (line[i + 1] == 'x' && i + 3 < close) {
          token.push_back(static_cast<std::uint8_t>(std::stoi(line.substr(i + 2, 2), nullptr, 16)));
          i += 3;
        } else {
          token.push_back(static_cast<std::uint8_t>(line[i + 1]));
          ++i;
        }
      } else {
        token.push_back(static_cast<std::uint8_t>(line[i]));
      }
    }
    if (!token.empty()) g_dictionary.push_back(std::move(token));
  }
  return true;
}

void Insert(std::vector<std::uint8_t>& data, std::size_t at, const std::uint8_t* bytes, std::size_t count) {
  data.insert(data.begin() + static_cast<std::ptrdiff_t>(at), bytes, bytes + count);
}

void Overwrite(std::vector<std::uint8_t>& data, std::size_t at, const std::uint8_t* bytes, std::size_t count) {
  if (at + count > data.size()) data.resize(at + count);
  std::memcpy(data.data() + at, bytes, count);
}

// One mutation of `data` in place. Returns false if it could not apply (the caller tries another).
bool MutateOnce(std::vector<std::uint8_t>& data) {
  switch (Below(13)) {
    case 0: {  // erase a range
      if (data.size() < 2) return false;
      const std::size_t count = 1 + Below(std::min<std::size_t>(data.size() - 1, 16));
      const std::size_t at = Below(data.size() - count + 1);
      data.erase(data.begin() + static_cast<std::ptrdiff_t>(at), data.begin() + static_cast<std::ptrdiff_t>(at + count));
      return true;
    }
    case 1: {  // insert one random byte
      const auto byte = static_cast<std::uint8_t>(g_random());
      Insert(data, Below(data.size() + 1), &byte, 1);
      return true;
    }
    case 2: {  // insert a run of one byte
      const std::vector<std::uint8_t> run(3 + Below(30), Below(2) ? 0x00 : static_cast<std::uint8_t>(g_random()));
      Insert(data, Below(data.size() + 1), run.data(), run.size());
      return true;
    }
    case 3: {  // change a byte
      if (data.empty()) return false;
      data[Below(data.size())] = static_cast<std::uint8_t>(g_random());
      return true;
    }
    case 4: {  // flip a bit
      if (data.empty()) return false;
      data[Below(data.size())] ^= static_cast<std::uint8_t>(1u << Below(8));
      return true;
    }
    case 5: {  // a byte from the interesting values
      static constexpr std::uint8_t kInteresting[] = {0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0x82, 0x83, 0xff, 0x30, 0x31, 0xa0};
      if (data.empty()) return false;
      data[Below(data.size())] = kInteresting[Below(sizeof kInteresting)];
      return true;
    }
    case 6: {  // add a small delta to a 1/2/4-octet big- or little-endian integer
      const std::size_t width = std::size_t{1} << Below(3);
      if (data.size() < width) return false;
      const std::size_t at = Below(data.size() - width + 1);
      const bool big_endian = Below(2) == 0;
      std::uint64_t value = 0;
      for (std::size_t i = 0; i < width; ++i) value |= std::uint64_t{data[at + i]} << (8 * (big_endian ? width - 1 - i : i));
      value += static_cast<std::uint64_t>(static_cast<std::int64_t>(Below(71)) - 35);
      for (std::size_t i = 0; i < width; ++i) {
        data[at + i] = static_cast<std::uint8_t>(value >> (8 * (big_endian ? width - 1 - i : i)));
      }
      return true;
    }
    case 7: {  // change a decimal number written in ASCII
      std::vector<std::size_t> digits;
      for (std::size_t i = 0; i < data.size(); ++i) {
        if (data[i] >= '0' && data[i] <= '9') digits.push_back(i);
      }
      if (digits.empty()) return false;
      data[digits[Below(digits.size())]] = static_cast<std::uint8_t>('0' + Below(10));
      return true;
    }
    case 8: {  // copy or insert a part of the input elsewhere in it
      if (data.size() < 2) return false;
      const std::size_t from = Below(data.size());
      const std::size_t count = 1 + Below(std::min<std::size_t>(data.size() - from, 64));
      const std::vector<std::uint8_t> part(data.begin() + static_cast<std::ptrdiff_t>(from),
                                           data.begin() + static_cast<std::ptrdiff_t>(from + count));
      if (Below(2)) {
        Insert(data, Below(data.size() + 1), part.data(), part.size());
      } else {
        Overwrite(data, Below(data.size()), part.data(), part.size());
      }
      return true;
    }
    case 9: {  // cross over with another corpus input
      if (g_corpus.empty()) return false;
      const std::vector<std::uint8_t>& other = g_corpus[Below(g_corpus.size())];
      if (other.empty()) return false;
      const std::size_t from = Below(other.size());
      const std::size_t count = 1 + Below(other.size() - from);
      if (Below(2)) {
        Insert(data, Below(data.size() + 1), other.data() + from, count);
      } else {
        Overwrite(data, Below(data.size() + 1), other.data() + from, count);
      }
      return true;
    }
    case 10: {  // a dictionary token, inserted or written over
      if (g_dictionary.empty()) return false;
      const std::vector<std::uint8_t>& token = g_dictionary[Below(g_dictionary.size())];
      if (Below(2)) {
        Insert(data, Below(data.size() + 1), token.data(), token.size());
      } else {
        Overwrite(data, Below(data.size() + 1), token.data(), token.size());
      }
      return true;
    }
    case 11:
    case 12: {  // a compared-against value: where the input has one operand, write the other
      if (g_comparison_count == 0) return false;
      const Comparison& comparison = g_comparisons[Below(kComparisons)];
      if (comparison.size == 0) return false;
      const std::size_t size = comparison.size;
      // Integers were recorded in host (little-endian) order; the input may hold them either way.
      std::uint8_t from[32], to[32];
      const bool reverse = size <= 8 && Below(2);
      for (std::size_t i = 0; i < size; ++i) {
        from[i] = comparison.a[reverse ? size - 1 - i : i];
        to[i] = comparison.b[reverse ? size - 1 - i : i];
      }
      if (data.size() >= size) {
        const std::size_t start = Below(data.size());
        for (std::size_t k = 0; k + size <= data.size(); ++k) {
          const std::size_t at = (start + k) % (data.size() - size + 1);
          if (std::memcmp(data.data() + at, from, size) == 0) {
            std::memcpy(data.data() + at, to, size);
            return true;
          }
        }
      }
      Overwrite(data, Below(data.size() + 1), to, size);  // not found: write it somewhere
      return true;
    }
  }
  return false;
}

std::size_t g_max_len = 4096;

}  // namespace

// libFuzzer's default mutator, for custom mutators to fall back on.
extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size) {
  std::vector<std::uint8_t> buffer(data, data + size);
  const std::size_t rounds = 1 + Below(4);
  for (std::size_t i = 0, tries = 0; i < rounds && tries < 32; ++tries) {
    if (MutateOnce(buffer)) ++i;
  }
  if (buffer.size() > max_size) buffer.resize(max_size);
  if (!buffer.empty()) std::memcpy(data, buffer.data(), buffer.size());
  return buffer.size();
}

namespace {

// ------------------------------------------------------------------------------------------------
// Crashes, hangs, artifacts
// ------------------------------------------------------------------------------------------------

const std::uint8_t* volatile g_current_data = nullptr;
volatile std::size_t g_current_size = 0;
std::string g_artifact_prefix = "./";
volatile sig_atomic_t g_dumped = 0;
volatile std::int64_t g_execution_started_ms = 0;
std::int64_t g_timeout_ms = 25'000;

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

std::uint64_t Fnv1a(const std::uint8_t* data, std::size_t size) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * 0x100000001b3ULL;
  return hash;
}

// Async-signal-safe: open/write/close and hand-made formatting only.
void WriteArtifact(const char* kind) {
  if (g_dumped || g_current_data == nullptr) return;
  g_dumped = 1;
  char path[4096];
  std::size_t length = 0;
  auto append = [&](const char* text) {
    while (*text != '\0' && length + 1 < sizeof path) path[length++] = *text++;
  };
  append(g_artifact_prefix.c_str());
  append(kind);
  append("-");
  const std::uint64_t hash = Fnv1a(g_current_data, g_current_size);
  for (int shift = 60; shift >= 0; shift -= 4) {
    if (length + 1 < sizeof path) path[length++] = "0123456789abcdef"[(hash >> shift) & 0xf];
  }
  path[length] = '\0';
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    std::size_t written = 0;
    while (written < g_current_size) {
      const ssize_t n = ::write(fd, g_current_data + written, g_current_size - written);
      if (n <= 0) break;
      written += static_cast<std::size_t>(n);
    }
    ::close(fd);
  }
  const char note[] = "\n==standalone-fuzzer== the input is saved as ";
  [[maybe_unused]] ssize_t ignored = ::write(2, note, sizeof note - 1);
  ignored = ::write(2, path, length);
  ignored = ::write(2, "\n", 1);
}

void OnDeath() { WriteArtifact("crash"); }

void OnFatalSignal(int signal_number) {
  WriteArtifact("crash");
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

void OnAlarm(int) {
  const std::int64_t started = g_execution_started_ms;
  if (started != 0 && NowMs() - started > g_timeout_ms) {
    const char note[] = "\n==standalone-fuzzer== timeout: one input ran past -timeout\n";
    [[maybe_unused]] ssize_t ignored = ::write(2, note, sizeof note - 1);
    WriteArtifact("timeout");
    ::_exit(70);
  }
}

void InstallHandlers() {
  if (__sanitizer_set_death_callback != nullptr) __sanitizer_set_death_callback(OnDeath);
  for (const int signal_number : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) {
    struct sigaction action {};
    action.sa_handler = OnFatalSignal;
    sigemptyset(&action.sa_mask);
    ::sigaction(signal_number, &action, nullptr);
  }
  struct sigaction alarm_action {};
  alarm_action.sa_handler = OnAlarm;
  sigemptyset(&alarm_action.sa_mask);
  alarm_action.sa_flags = SA_RESTART;
  ::sigaction(SIGALRM, &alarm_action, nullptr);
  itimerval every_second{{1, 0}, {1, 0}};
  ::setitimer(ITIMER_REAL, &every_second, nullptr);
}

// Runs the target on one input; returns the number of new features it reached.
std::size_t Execute(const std::vector<std::uint8_t>& input) {
  // A copy of exactly `size` bytes, so that ASan sees any read past the end.
  std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[input.size() == 0 ? 1 : input.size()]);
  if (!input.empty()) std::memcpy(copy.get(), input.data(), input.size());
  g_current_data = copy.get();
  g_current_size = input.size();
  g_execution_started_ms = NowMs();
  StartTrace();
  LLVMFuzzerTestOneInput(copy.get(), input.size());
  const std::size_t added = FinishTrace();
  g_execution_started_ms = 0;
  g_current_data = nullptr;
  return added;
}

// ------------------------------------------------------------------------------------------------
// Files, statistics
// ------------------------------------------------------------------------------------------------

bool IsDirectory(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

std::vector<std::uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void ListFiles(const std::string& directory, std::vector<std::string>& out) {
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) return;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = directory + "/" + name;
    if (IsDirectory(path)) {
      ListFiles(path, out);
    } else {
      out.push_back(path);
    }
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end());
}

void SaveToCorpus(const std::string& directory, const std::vector<std::uint8_t>& input) {
  if (directory.empty()) return;
  char name[32];
  std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(Fnv1a(input.data(), input.size())));
  std::ofstream out(directory + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(input.data()), static_cast<std::streamsize>(input.size()));
}

long PeakRssMb() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}

struct Stats {
  std::uint64_t runs = 0;
  std::uint64_t new_units = 0;
  Clock::time_point start = Clock::now();
};

std::size_t CorpusBytes() {
  std::size_t total = 0;
  for (const auto& unit : g_corpus) total += unit.size();
  return total;
}

void PrintStatus(const Stats& stats, const char* what) {
  const double seconds = std::chrono::duration<double>(Clock::now() - stats.start).count();
  const auto per_second = seconds > 0 ? static_cast<unsigned long long>(static_cast<double>(stats.runs) / seconds) : 0ULL;
  std::fprintf(stderr, "#%llu\t%s cov: %zu ft: %zu corp: %zu/%zub exec/s: %llu rss: %ldMb\n",
               static_cast<unsigned long long>(stats.runs), what, g_block_count, g_feature_count, g_corpus.size(),
               CorpusBytes(), per_second, PeakRssMb());
}

struct Options {
  double max_total_time = 0;  // 0: unlimited
  std::uint64_t runs = 0;     // 0: unlimited (with no inputs given as files)
  std::uint64_t seed = 1;
  std::string dictionary;
  std::vector<std::string> inputs;
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view argument = argv[i];
    if (argument.size() > 1 && argument[0] == '-') {
      const auto equals = argument.find('=');
      const std::string name(argument.substr(1, equals == std::string_view::npos ? std::string_view::npos : equals - 1));
      const std::string value(equals == std::string_view::npos ? "" : argument.substr(equals + 1));
      if (name == "max_total_time") {
        options.max_total_time = std::stod(value);
      } else if (name == "runs") {
        options.runs = std::stoull(value);
      } else if (name == "seed") {
        options.seed = std::stoull(value);
      } else if (name == "max_len") {
        g_max_len = std::stoull(value);
      } else if (name == "timeout") {
        g_timeout_ms = std::stoll(value) * 1000;
      } else if (name == "dict") {
        options.dictionary = value;
      } else if (name == "artifact_prefix") {
        g_artifact_prefix = value;
      } else if (name == "print_final_stats" || name == "close_fd_mask" || name == "jobs" || name == "workers") {
        // libFuzzer flags with no meaning here: final statistics are always printed, and it runs one job.
      } else if (name == "help") {
        std::fprintf(stderr,
                     "usage: %s [-max_total_time=S] [-runs=N] [-seed=N] [-max_len=N] [-timeout=S] [-dict=FILE]\n"
                     "          [-artifact_prefix=PATH] [CORPUS_DIR ... | FILE ...]\n",
                     argv[0]);
        std::exit(0);
      } else {
        std::fprintf(stderr, "WARNING: unknown flag %s (ignored: this is the standalone driver)\n", argv[i]);
      }
    } else {
      options.inputs.emplace_back(argument);
    }
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  const Options options = ParseOptions(argc, argv);
  g_random.seed(options.seed);
  InstallHandlers();
  std::fprintf(stderr, "INFO: standalone driver (coverage: gcc trace-pc/trace-cmp), seed: %llu\n",
               static_cast<unsigned long long>(options.seed));
  if (!options.dictionary.empty()) {
    if (!LoadDictionary(options.dictionary)) {
      std::fprintf(stderr, "ERROR: cannot read dictionary %s\n", options.dictionary.c_str());
      return 1;
    }
    std::fprintf(stderr, "INFO: dictionary: %zu entries\n", g_dictionary.size());
  }

  // Files only: run each once (reproduce), like libFuzzer.
  const bool files_only = !options.inputs.empty() &&
                          std::none_of(options.inputs.begin(), options.inputs.end(), IsDirectory);
  if (files_only) {
    for (const std::string& path : options.inputs) {
      std::fprintf(stderr, "Running: %s\n", path.c_str());
      Execute(ReadAll(path));
      std::fprintf(stderr, "Executed %s\n", path.c_str());
    }
    return 0;
  }

  std::string output_directory;
  std::vector<std::string> files;
  for (const std::string& path : options.inputs) {
    if (!IsDirectory(path)) continue;
    if (output_directory.empty()) output_directory = path;
    ListFiles(path, files);
  }

  Stats stats;
  // The initial corpus: everything given, kept if it adds a feature (the empty input starts an empty corpus).
  std::vector<std::vector<std::uint8_t>> seeds;
  for (const std::string& path : files) seeds.push_back(ReadAll(path));
  if (seeds.empty()) seeds.emplace_back();
  std::sort(seeds.begin(), seeds.end(), [](const auto& a, const auto& b) { return a.size() < b.size(); });
  for (auto& seed : seeds) {
    if (seed.size() > g_max_len) seed.resize(g_max_len);
    ++stats.runs;
    if (Execute(seed) > 0 || g_corpus.empty()) g_corpus.push_back(std::move(seed));
  }
  PrintStatus(stats, "INITED");

  const auto deadline = stats.start + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(options.max_total_time));
  std::uint64_t next_pulse = 2;
  std::vector<std::uint8_t> child;
  while (true) {
    if (options.runs != 0 && stats.runs >= options.runs) break;
    if (options.max_total_time > 0 && (stats.runs & 63) == 0 && Clock::now() >= deadline) break;
    if (options.runs == 0 && options.max_total_time == 0 && stats.runs >= 1'000'000'000ULL) break;

    // Newer corpus inputs are picked a little more often: they are the frontier.
    const std::size_t pick = Below(2) ? Below(g_corpus.size())
                                      : g_corpus.size() - 1 - Below(std::min<std::size_t>(g_corpus.size(), 16));
    child = g_corpus[pick];
    child.reserve(g_max_len);
    if (LLVMFuzzerCustomMutator != nullptr) {
      const std::size_t original = child.size();
      child.resize(std::max(g_max_len, original));
      const std::size_t size = LLVMFuzzerCustomMutator(child.data(), original, g_max_len,
                                                       static_cast<unsigned int>(g_random()));
      child.resize(std::min(size, g_max_len));
    } else {
      const std::size_t rounds = 1 + Below(4);
      for (std::size_t i = 0, tries = 0; i < rounds && tries < 32; ++tries) {
        if (MutateOnce(child)) ++i;
      }
      if (child.size() > g_max_len) child.resize(g_max_len);
    }
    ++stats.runs;
    if (Execute(child) > 0) {
      g_corpus.push_back(child);
      ++stats.new_units;
      SaveToCorpus(output_directory, child);
      PrintStatus(stats, "NEW   ");
    } else if (stats.runs >= next_pulse) {
      PrintStatus(stats, "pulse ");
    }
    if (stats.runs >= next_pulse) next_pulse *= 2;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - stats.start).count();
  PrintStatus(stats, "DONE  ");
  std::fprintf(stderr, "Done %llu runs in %.0f second(s)\n", static_cast<unsigned long long>(stats.runs), seconds);
  std::fprintf(stderr, "stat::number_of_executed_units: %llu\n", static_cast<unsigned long long>(stats.runs));
  std::fprintf(stderr, "stat::average_exec_per_sec:     %llu\n",
               static_cast<unsigned long long>(seconds > 0 ? static_cast<double>(stats.runs) / seconds : 0));
  std::fprintf(stderr, "stat::new_units_added:          %llu\n", static_cast<unsigned long long>(stats.new_units));
  std::fprintf(stderr, "stat::coverage_blocks:          %zu\n", g_block_count);
  std::fprintf(stderr, "stat::features:                 %zu\n", g_feature_count);
  std::fprintf(stderr, "stat::corpus_units:             %zu\n", g_corpus.size());
  std::fprintf(stderr, "stat::peak_rss_mb:              %ld\n", PeakRssMb());
  return 0;
}
