#include "cluster/membership.h"

namespace objstore::cluster {

const char* MemberStateName(MemberState s) {
  switch (s) {
    case MemberState::kAlive: return "alive";
    case MemberState::kSuspect: return "suspect";
    case MemberState::kDead: return "dead";
  }
  return "dead";
}

std::optional<MemberState> ParseMemberState(const std::string& name) {
  if (name == "alive") return MemberState::kAlive;
  if (name == "suspect") return MemberState::kSuspect;
  if (name == "dead") return MemberState::kDead;
  return std::nullopt;
}

Membership::Membership(const Clock& clock, Member self) : clock_(clock), self_id_(self.id) {
  self.state = MemberState::kAlive;
  self.changed_ms = self.last_seen_ms = NowMs();
  members_.emplace(self.id, std::move(self));
}

int64_t Membership::NowMs() const { return clock_.NowNanos() / 1'000'000; }

Member Membership::self() const {
  std::lock_guard lock(mu_);
  return members_.at(self_id_);
}

void Membership::SetSelfAddr(const std::string& addr) {
  std::lock_guard lock(mu_);
  members_.at(self_id_).addr = addr;
}

std::vector<Member> Membership::All() const {
  std::lock_guard lock(mu_);
  std::vector<Member> out;
  out.push_back(members_.at(self_id_));
  for (const auto& [id, m] : members_) {
    if (id != self_id_) out.push_back(m);
  }
  return out;
}

std::optional<Member> Membership::Find(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = members_.find(id);
  if (it == members_.end()) return std::nullopt;
  return it->second;
}

std::vector<Member> Membership::ReachablePeers() const {
  std::lock_guard lock(mu_);
  std::vector<Member> out;
  for (const auto& [id, m] : members_) {
    if (id != self_id_ && m.state != MemberState::kDead) out.push_back(m);
  }
  return out;
}

std::vector<Member> Membership::DeadPeers() const {
  std::lock_guard lock(mu_);
  std::vector<Member> out;
  for (const auto& [id, m] : members_) {
    if (id != self_id_ && m.state == MemberState::kDead) out.push_back(m);
  }
  return out;
}

size_t Membership::AliveCount() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [id, m] : members_) n += m.state == MemberState::kAlive;
  return n;
}

void Membership::Apply(const Member& in, bool direct, std::vector<MembershipEvent>& events) {
  if (in.id.empty()) return;
  const int64_t now = NowMs();
  if (in.id == self_id_) {
    // Refutation: nobody may declare us suspect or dead.
    Member& self = members_.at(self_id_);
    if (in.state != MemberState::kAlive && in.incarnation >= self.incarnation) {
      self.incarnation = in.incarnation + 1;
      self.changed_ms = now;
    }
    return;
  }
  auto it = members_.find(in.id);
  if (it == members_.end()) {
    Member m = in;
    m.changed_ms = now;
    m.last_seen_ms = direct ? now : 0;
    members_.emplace(m.id, m);
    events.push_back({in.id, in.state, in.state, true});
    return;
  }
  Member& cur = it->second;
  if (direct) cur.last_seen_ms = now;
  const bool newer = in.incarnation > cur.incarnation ||
                     (in.incarnation == cur.incarnation && in.state > cur.state);
  // A member speaking for itself is alive, whatever older rumours said.
  const bool revived = direct && in.state == MemberState::kAlive &&
                       cur.state != MemberState::kAlive && in.incarnation >= cur.incarnation;
  if (!newer && !revived) {
    if (!in.addr.empty() && direct) cur.addr = in.addr;
    return;
  }
  const MemberState before = cur.state;
  cur.incarnation = in.incarnation;
  cur.state = in.state;
  if (!in.addr.empty()) cur.addr = in.addr;
  if (!in.public_addr.empty()) cur.public_addr = in.public_addr;
  if (before != cur.state) {
    cur.changed_ms = now;
    events.push_back({cur.id, before, cur.state, false});
  }
}

std::vector<MembershipEvent> Membership::Merge(const std::vector<Member>& members) {
  std::vector<MembershipEvent> events;
  std::lock_guard lock(mu_);
  for (const Member& m : members) Apply(m, false, events);
  return events;
}

std::vector<MembershipEvent> Membership::Heard(const Member& from) {
  std::vector<MembershipEvent> events;
  Member m = from;
  m.state = MemberState::kAlive;
  std::lock_guard lock(mu_);
  Apply(m, true, events);
  return events;
}

std::vector<MembershipEvent> Membership::ProbeFailed(const std::string& id) {
  std::vector<MembershipEvent> events;
  std::lock_guard lock(mu_);
  auto it = members_.find(id);
  if (it == members_.end() || id == self_id_ || it->second.state != MemberState::kAlive) {
    return events;
  }
  it->second.state = MemberState::kSuspect;
  it->second.changed_ms = NowMs();
  events.push_back({id, MemberState::kAlive, MemberState::kSuspect, false});
  return events;
}

std::vector<MembershipEvent> Membership::ExpireSuspects(std::chrono::milliseconds timeout) {
  std::vector<MembershipEvent> events;
  const int64_t now = NowMs();
  std::lock_guard lock(mu_);
  for (auto& [id, m] : members_) {
    if (m.state == MemberState::kSuspect && now - m.changed_ms >= timeout.count()) {
      m.state = MemberState::kDead;
      m.changed_ms = now;
      events.push_back({id, MemberState::kSuspect, MemberState::kDead, false});
    }
  }
  return events;
}

}  // namespace objstore::cluster
