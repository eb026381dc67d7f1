// Keeps the workers' shares of open connections even. A front end (http1.h) that holds clearly more
// connections than the least loaded one hands some of its idle ones to it: the socket moves to the other
// worker's loop between two requests, and the client notices nothing.
//
// Why: the kernel decides which worker accepts a connection, and it does not look at load. With connection
// steering by CPU (cpu_steering.h) every connection whose SYN is processed on one CPU goes to that CPU's
// worker: a single-queue NIC, or a client whose threads all connect from one core, would leave the other
// workers idle. With the kernel's hash, 16 connections split 11/5 about as often as 8/8. Balancing by count
// bounds both at what the hash gives on average, and leaves a well-spread steering untouched.
// Rule: a front end holding `open` connections hands (open - least) / 2 idle ones to the least loaded member
// when open - least >= max(2, (open + least) / 4); so 8/8 and 9/7 stay, 16/0 becomes 8/8, 2/0 becomes 1/1.
// With workers pinned to CPUs (steering), the connections handed over are first those whose packets now arrive
// on the receiving worker's CPU (SO_INCOMING_CPU), and an idle connection whose packets have arrived on another
// worker's CPU twice in a row (looks 200 ms to 1 s apart, a sample of connections each) moves there, as long as
// the shares stay within the rule: a client whose threads all connected from one CPU and then spread out is
// served where its packets arrive. Past the rule, such moves go on while the receiving member has published that
// it wants to move as many the other way (an exchange: a client whose threads sit on different CPUs than the
// workers it connected to ends up served locally on both). A look moves at most 64 connections and samples at
// most 256 CPUs.
// Thread safety: Join before any member's loop runs; the rest from any member's thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace ocsp::responder {

class HttpFrontEnd;

class ConnectionBalancer {
 public:
  struct Transfer {
    std::size_t to = 0;
    std::size_t count = 0;
  };

  // Adds `front_end`, whose loop runs pinned to `cpu` (if any), and returns its index among the members.
  std::size_t Join(HttpFrontEnd& front_end, std::optional<int> cpu);
  // What the member `from`, holding `open` connections, should hand over now; nullopt when balanced.
  [[nodiscard]] std::optional<Transfer> Plan(std::size_t from, std::size_t open) const;
  // Whether `from`, holding `open`, may hand one more connection that arrives on `to`'s CPU to `to`, which has
  // `sent` on their way there from `from`: within the rule, or in exchange for as many `to` wants to hand back.
  [[nodiscard]] bool MayTake(std::size_t from, std::size_t to, std::size_t sent, std::size_t open) const;
  // How many of its connections `from` saw arriving on each member's CPU and could not move there (by index).
  void PublishWants(std::size_t from, std::span<const std::uint32_t> wants);
  [[nodiscard]] HttpFrontEnd& member(std::size_t index) const { return *members_[index].front_end; }
  [[nodiscard]] std::size_t size() const { return members_.size(); }
  [[nodiscard]] std::optional<int> cpu_of(std::size_t index) const { return members_[index].cpu; }
  // The member pinned to `cpu`, if any.
  [[nodiscard]] std::optional<std::size_t> MemberOnCpu(int cpu) const;

  // The rule alone, for the tests: how many of `open` to hand to a member holding `least`.
  static std::size_t Surplus(std::size_t open, std::size_t least);

 private:
  struct Member {
    HttpFrontEnd* front_end;
    std::optional<int> cpu;
  };
  std::vector<Member> members_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> wants_;  // [from * size + to], rebuilt by Join
};

}  // namespace ocsp::responder
