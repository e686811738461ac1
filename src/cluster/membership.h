// Membership: who is in the cluster and whether they are alive (SWIM-style).
//
// Design (Das, Gupta, Motivala, "SWIM", 2002; the merge rules of memberlist):
// - Each member has an id (stable across restarts), an advertised private
//   address, an incarnation number and a state: alive, suspect or dead.
// - Lists from peers are merged entry by entry: a higher incarnation wins; at
//   the same incarnation dead > suspect > alive. An entry about this node that
//   says suspect or dead (at an incarnation >= ours) is refuted by raising our
//   own incarnation, so a live node cannot be talked into death and a restarted
//   node revives its old id.
// - The failure detector (in Cluster) reports probe results here: a failed
//   probe makes a member suspect; a suspect that does not refute within the
//   suspicion timeout becomes dead. Any direct contact revives a member whose
//   entry is older than what the contact says.
// Pure state machine over an injected clock: no I/O, deterministic in tests.
// Thread safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.h"

namespace objstore::cluster {

enum class MemberState { kAlive = 0, kSuspect = 1, kDead = 2 };
const char* MemberStateName(MemberState s);
std::optional<MemberState> ParseMemberState(const std::string& name);

struct Member {
  std::string id;
  std::string addr;         // private host:port peers use
  std::string public_addr;  // for operators (stats), not used by peers
  uint64_t incarnation = 0;
  MemberState state = MemberState::kAlive;
  int64_t changed_ms = 0;     // local time of the last state change
  int64_t last_seen_ms = 0;   // local time of the last direct answer
};

// What a merge or probe changed, for logging and for triggering a sync.
struct MembershipEvent {
  std::string id;
  MemberState from, to;
  bool is_new = false;
};

class Membership {
 public:
  Membership(const Clock& clock, Member self);

  Member self() const;
  // Sets the address this node advertises (known once its listener is bound).
  void SetSelfAddr(const std::string& addr);
  std::vector<Member> All() const;  // self first
  std::optional<Member> Find(const std::string& id) const;
  // Live peers (alive or suspect), self excluded.
  std::vector<Member> ReachablePeers() const;
  std::vector<Member> DeadPeers() const;
  size_t AliveCount() const;  // alive members, self included

  // Merges a member list received from a peer.
  std::vector<MembershipEvent> Merge(const std::vector<Member>& members);
  // A peer answered us directly (its own entry, as it describes itself).
  std::vector<MembershipEvent> Heard(const Member& from);
  // A probe of `id` (direct and indirect) found no answer.
  std::vector<MembershipEvent> ProbeFailed(const std::string& id);
  // Declares dead every suspect older than `suspect_timeout`.
  std::vector<MembershipEvent> ExpireSuspects(std::chrono::milliseconds suspect_timeout);

 private:
  void Apply(const Member& in, bool direct, std::vector<MembershipEvent>& events);  // requires mu_
  int64_t NowMs() const;

  const Clock& clock_;
  mutable std::mutex mu_;
  std::string self_id_;
  std::unordered_map<std::string, Member> members_;  // guarded by mu_; self included
};

}  // namespace objstore::cluster
