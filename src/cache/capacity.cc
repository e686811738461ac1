// Capacity (contract in capacity.h).
//
// Accounting: used_ = reserved_ + the sizes of every entry. A writer's bytes
// enter used_ when reserved and stay there as the body's size once AddBody
// hands the reservation over, so no byte is ever uncounted between the temp
// file and the committed body. Removing a file may lag its accounting the
// other way only (counted a little longer than it exists), never the reverse.
//
// Eviction pass (on the thread, mu_ held except around remove_body):
//   while used_ > target:
//     victim = policy.Victim(claim)   -- claim: no reader, mark it "evicting"
//     unlock; removal = remove_body(key, version)  -- the journal decides
//     unmark; lock; removed: forget the entry; refused: mark it not evictable;
//     failed (I/O): keep it, skip it for the rest of this pass
// Pins live in 16 striped tables (key -> readers, evicting), not under mu_:
// claiming a key and pinning it are atomic with respect to each other under
// the key's stripe lock, so a reader never opens a file the pass is deleting
// and a pinned file is never deleted. A hit takes only its stripe lock and
// *tries* mu_ for the policy's Access: two event loops never wait for each
// other (with one global mutex, hit throughput on 2 loops fell to 0.64x). A stalled pass is not
// repeated until something changes (a body becomes evictable, a pin is released, a new reservation
// waits, or, while one waits, a write or an upload ends), so a budget full of level-0 bodies costs
// no CPU. A stalled pass also leaves its verdict for the waiting reservations: give up (507), or
// wait, when pinned candidates or bytes in flight (Settling) may yet make room.
#include "cache/capacity.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_set>

namespace objstore {

// ------------------------------------------------------------ handles

Reservation::Reservation(Reservation&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

Reservation& Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    if (owner_ != nullptr && bytes_ > 0) owner_->Release(bytes_);
    owner_ = std::exchange(other.owner_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Reservation::~Reservation() {
  if (owner_ != nullptr && bytes_ > 0) owner_->Release(bytes_);
}

BodyPin::BodyPin(BodyPin&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      pin_id_(other.pin_id_),
      safe_(other.safe_) {}

BodyPin& BodyPin::operator=(BodyPin&& other) noexcept {
  if (this != &other) {
    if (owner_ != nullptr) owner_->Unpin(pin_id_);
    owner_ = std::exchange(other.owner_, nullptr);
    pin_id_ = other.pin_id_;
    safe_ = other.safe_;
  }
  return *this;
}

BodyPin::~BodyPin() {
  if (owner_ != nullptr) owner_->Unpin(pin_id_);
}

// ------------------------------------------------------------ set-up

Result<std::unique_ptr<Capacity>> Capacity::Open(const CapacityOptions& options,
                                                 CapacityHooks hooks) {
  if (options.max_bytes == 0) return Status::Invalid("the byte budget (--max-size) must be > 0");
  if (!(options.low_watermark > 0 && options.low_watermark <= options.high_watermark &&
        options.high_watermark <= 1)) {
    return Status::Invalid("watermarks must satisfy 0 < low <= high <= 1");
  }
  std::unique_ptr<EvictionPolicy> policy;
  if (options.policy != kNoEviction) {
    auto made = MakePolicy(options.policy, options.max_bytes);
    if (!made.ok()) return made.status();
    policy = std::move(made).value();
  }
  std::unique_ptr<Capacity> c(new Capacity(options, std::move(hooks), std::move(policy)));
  c->thread_ = std::thread([raw = c.get()] { raw->EvictionLoop(); });
  return c;
}

Capacity::Capacity(const CapacityOptions& options, CapacityHooks hooks,
                   std::unique_ptr<EvictionPolicy> policy)
    : options_(options),
      hooks_(std::move(hooks)),
      max_bytes_(options.max_bytes),
      high_bytes_(
          static_cast<uint64_t>(static_cast<double>(options.max_bytes) * options.high_watermark)),
      low_bytes_(
          static_cast<uint64_t>(static_cast<double>(options.max_bytes) * options.low_watermark)),
      policy_(std::move(policy)) {}

Capacity::~Capacity() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  evict_cv_.notify_all();
  space_cv_.notify_all();
  thread_.join();
  std::unique_lock lock(mu_);
  SaveState(lock);
}

size_t Capacity::Load(const std::vector<StoredBody>& bodies, std::string_view saved_state) {
  std::lock_guard lock(mu_);
  std::unordered_map<std::string, uint64_t> evictable;  // key -> size
  const bool evicts = policy_ != nullptr;
  for (const StoredBody& b : bodies) {
    auto [it, inserted] = entries_.try_emplace(b.key);
    if (!inserted) used_ -= it->second.size;
    it->second = Entry{b.version, b.size, b.evictable && evicts, false, ++generations_};
    used_ += b.size;
    if (it->second.evictable) evictable[b.key] = b.size;
  }
  if (!evicts) return 0;
  std::vector<PolicyEntryState> saved;
  if (!saved_state.empty()) {
    auto decoded = DecodePolicyState(saved_state);
    if (decoded.ok()) {
      saved = std::move(decoded).value();
    } else {
      spdlog::warn("saved eviction state ignored: {}", decoded.status().ToString());
    }
  }
  // Bodies the saved state does not know first: restored states list oldest
  // first, so they are the first candidates (nothing says they are hot).
  std::unordered_set<std::string_view> known;
  for (const PolicyEntryState& e : saved) {
    if (e.queue != PolicyQueue::kGhost) known.insert(e.key);
  }
  std::vector<PolicyEntryState> state;
  state.reserve(evictable.size() + saved.size());
  for (const StoredBody& b : bodies) {
    if (evictable.contains(b.key) && !known.contains(b.key)) {
      state.push_back({b.key, b.size, PolicyQueue::kSmall, 0});
    }
  }
  size_t restored = 0;
  std::unordered_set<std::string_view> taken;
  for (PolicyEntryState& e : saved) {
    if (e.queue == PolicyQueue::kGhost) {
      state.push_back(std::move(e));
      continue;
    }
    auto it = evictable.find(e.key);
    if (it == evictable.end() || !taken.insert(it->first).second) continue;
    e.size = it->second;
    state.push_back(std::move(e));
    ++restored;
  }
  if (Status s = policy_->RestoreState(state); !s.ok()) {
    spdlog::warn("eviction state not restored: {}", s.ToString());
  }
  Changed();
  if (used_ > high_bytes_) evict_cv_.notify_one();
  return restored;
}

// ------------------------------------------------------------ reservations

bool Capacity::FitsUnder(uint64_t bytes, uint64_t limit) const {
  return bytes <= limit && used_ <= limit - bytes;  // used_ + bytes <= limit, without overflow
}

void Capacity::Grant(Reservation& r, uint64_t bytes) {
  // A default-constructed reservation is adopted; without an owner its bytes
  // would never be given back.
  if (r.owner_ == nullptr) r.owner_ = this;
  used_ += bytes;
  reserved_ += bytes;
  r.bytes_ += bytes;
}

bool Capacity::TryReserve(Reservation& r, uint64_t bytes) {
  std::lock_guard lock(mu_);
  if (!FitsUnder(bytes, max_bytes_)) return false;
  Grant(r, bytes);
  if (used_ > high_bytes_) evict_cv_.notify_one();
  return true;
}

bool Capacity::TryReserveSpare(Reservation& r, uint64_t bytes) {
  std::lock_guard lock(mu_);
  if (!FitsUnder(bytes, low_bytes_)) return false;
  Grant(r, bytes);
  return true;
}

Status Capacity::Reserve(Reservation& r, uint64_t bytes) {
  std::unique_lock lock(mu_);
  auto fits = [&] { return FitsUnder(bytes, max_bytes_); };
  // At most what eviction, uploads in flight (their bodies become evictable)
  // and other writes in flight (they may fail) could free: when even that
  // leaves no room, evicting would empty the cache only to refuse.
  auto could_fit = [&] {
    const uint64_t freeable =
        (policy_ != nullptr ? policy_->bytes() : 0) + uploading_bytes_ + (reserved_ - r.bytes_);
    return used_ - std::min(used_, freeable) + bytes <= max_bytes_;
  };
  bool timed_out = false;
  if (bytes <= max_bytes_ && !fits() && could_fit()) {
    demand_ += bytes;
    waiting_held_ += r.bytes_;
    ++waiters_;
    const bool waits_for_settling = settling_waiters_ < options_.max_settling_waiters;
    if (waits_for_settling) ++settling_waiters_;
    const uint64_t passes_before = passes_;
    Changed();
    evict_cv_.notify_one();
    timed_out = !space_cv_.wait_for(lock, options_.reserve_timeout, [&] {
      return stopping_ || fits() ||
             (passes_ > passes_before && stalled_.load() && !stalled_on_pins_ &&
              !(stalled_settling_ && waits_for_settling));
    });
    demand_ -= bytes;
    waiting_held_ -= r.bytes_;
    --waiters_;
    if (waits_for_settling) --settling_waiters_;
  }
  if (bytes > max_bytes_ || !fits()) {
    ++counters_.refused_reservations;
    return Status::NoSpace(fmt::format(
        "the cache budget (--max-size {} bytes) cannot take {} more bytes: {} used, {} of them "
        "by writes in flight, and nothing more {} (level-0 bodies, bodies not yet in the cold "
        "store and bodies being read are never evicted)",
        max_bytes_, bytes, used_, reserved_,
        timed_out ? fmt::format("could be evicted within {} ms", options_.reserve_timeout.count())
                  : std::string("can be evicted")));
  }
  Grant(r, bytes);
  if (used_ > high_bytes_) evict_cv_.notify_one();
  return Status::Ok();
}

void Capacity::Release(uint64_t bytes) {
  std::lock_guard lock(mu_);
  used_ -= bytes;
  reserved_ -= bytes;
  if (demand_ > 0) Changed();  // a write in flight ended: a fresh verdict for the waiters
  space_cv_.notify_all();
}

// ------------------------------------------------------------ bodies

void Capacity::AddBody(const std::string& key, uint64_t version, uint64_t size, bool evictable,
                       Reservation* r) {
  std::lock_guard lock(mu_);
  evictable = evictable && policy_ != nullptr;
  if (r != nullptr) {
    used_ -= r->bytes_;
    reserved_ -= r->bytes_;
    r->bytes_ = 0;
  }
  auto [it, inserted] = entries_.try_emplace(key);
  const bool was_evictable = !inserted && it->second.evictable;
  if (!inserted) {
    used_ -= it->second.size;
    if (it->second.uploading) uploading_bytes_ -= it->second.size;
  }
  it->second = Entry{version, size, evictable, false, ++generations_};
  used_ += size;
  if (evictable) {
    policy_->Insert(key, size);
  } else if (was_evictable) {
    policy_->Erase(key);
  }
  if (evictable || demand_ > 0) Changed();
  state_dirty_ = true;
  if (used_ > high_bytes_) evict_cv_.notify_one();
  space_cv_.notify_all();
}

void Capacity::RemoveBody(const std::string& key, uint64_t version) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.version != version) return;
  Forget(it);
  if (demand_ > 0) Changed();
  space_cv_.notify_all();
}

void Capacity::Forget(std::unordered_map<std::string, Entry>::iterator it) {
  used_ -= it->second.size;
  if (it->second.uploading) uploading_bytes_ -= it->second.size;
  if (it->second.evictable) policy_->Erase(it->first);
  entries_.erase(it);
  state_dirty_ = true;
}

bool Capacity::Counts(const std::string& key, uint64_t version) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  return it != entries_.end() && it->second.version == version;
}

void Capacity::SetEvictable(const std::string& key, uint64_t version, bool evictable) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.version != version) return;
  evictable = evictable && policy_ != nullptr;
  if (it->second.evictable == evictable) return;
  it->second.evictable = evictable;
  if (evictable) {
    policy_->Insert(key, it->second.size);
    Changed();
  } else {
    policy_->Erase(key);
  }
  state_dirty_ = true;
}

void Capacity::UploadStarted(const std::string& key, uint64_t version) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.version != version || it->second.uploading) return;
  it->second.uploading = true;
  uploading_bytes_ += it->second.size;
}

void Capacity::UploadEnded(const std::string& key, uint64_t version) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.version != version || !it->second.uploading) return;
  it->second.uploading = false;
  uploading_bytes_ -= it->second.size;
  if (demand_ > 0) Changed();
}

bool Capacity::Settling() const {
  return reserved_ > waiting_held_ || uploading_bytes_ > 0;
}

BodyPin Capacity::Pin(const std::string& key) {
  if (policy_ == nullptr) return BodyPin(nullptr, 0, true);  // nothing is ever evicted
  const size_t id = PinIdOf(key);
  PinShard& shard = ShardOf(id);
  std::lock_guard lock(shard.mu);
  PinState& st = shard.keys[id];
  ++st.readers;
  return BodyPin(this, id, !st.evicting);
}

BodyPin Capacity::PinForRead(const std::string& key) {
  BodyPin pin = Pin(key);
  RecordHit(key);
  return pin;
}

void Capacity::RecordHit(const std::string& key) {
  if (policy_ == nullptr) return;
  // The hit is recorded only if the policy is free this instant: a hit never
  // waits for another loop's bookkeeping or for an eviction pass (a dropped
  // hit costs the policy one frequency bump, as in Caffeine's read buffers).
  std::unique_lock lock(mu_, std::try_to_lock);
  if (lock.owns_lock()) {
    if (policy_->Access(key)) state_dirty_ = true;
  } else {
    dropped_hits_.fetch_add(1, std::memory_order_relaxed);
  }
}

void Capacity::RecordHits(const std::string& key, uint32_t count) {
  if (policy_ == nullptr) return;
  std::lock_guard lock(mu_);
  for (uint32_t i = 0; i < std::min<uint32_t>(count, 16); ++i) {
    if (!policy_->Access(key)) return;
    state_dirty_ = true;
  }
}

void Capacity::Unpin(size_t pin_id) {
  {
    PinShard& shard = ShardOf(pin_id);
    std::lock_guard lock(shard.mu);
    auto it = shard.keys.find(pin_id);
    if (it == shard.keys.end()) return;
    if (--it->second.readers > 0) return;
    if (!it->second.evicting) shard.keys.erase(it);
  }
  if (stalled_.load(std::memory_order_relaxed)) {  // a pin may have been all that was left
    std::lock_guard lock(mu_);
    Changed();
  }
}

Capacity::PinShard& Capacity::ShardOf(size_t pin_id) {
  return pin_shards_[pin_id % pin_shards_.size()];
}

bool Capacity::ClaimForEviction(const std::string& key) {
  const size_t id = PinIdOf(key);
  PinShard& shard = ShardOf(id);
  std::lock_guard lock(shard.mu);
  PinState& st = shard.keys[id];
  if (st.readers > 0) return false;
  st.evicting = true;
  return true;
}

bool Capacity::Evicting(const std::string& key) {
  const size_t id = PinIdOf(key);
  PinShard& shard = ShardOf(id);
  std::lock_guard lock(shard.mu);
  auto it = shard.keys.find(id);
  return it != shard.keys.end() && it->second.evicting;
}

void Capacity::EndEviction(const std::string& key) {
  const size_t id = PinIdOf(key);
  PinShard& shard = ShardOf(id);
  std::lock_guard lock(shard.mu);
  auto it = shard.keys.find(id);
  if (it == shard.keys.end()) return;
  it->second.evicting = false;
  if (it->second.readers == 0) shard.keys.erase(it);
}

CapacityStats Capacity::Stats() const {
  std::lock_guard lock(mu_);
  CapacityStats s = counters_;
  s.policy = policy_ != nullptr ? policy_->name() : kNoEviction;
  s.max_bytes = max_bytes_;
  s.used_bytes = used_;
  s.reserved_bytes = reserved_;
  s.evictable_bytes = policy_ != nullptr ? policy_->bytes() : 0;
  s.bodies = entries_.size();
  s.waiting_reservations = waiters_;
  s.dropped_hits = dropped_hits_.load(std::memory_order_relaxed);
  s.policy_hits = policy_ != nullptr ? policy_->stats().hits : 0;
  return s;
}

// ------------------------------------------------------------ the eviction thread

void Capacity::Changed() {
  ++changes_;
  if (WantsEviction()) evict_cv_.notify_one();
}

bool Capacity::WantsEviction() const {
  const bool over = used_ > high_bytes_ || (demand_ > 0 && used_ + demand_ > max_bytes_);
  return over && !(stalled_.load(std::memory_order_relaxed) && stalled_at_ == changes_);
}

uint64_t Capacity::EvictionTarget() const {
  return std::min(low_bytes_, max_bytes_ - std::min(demand_, max_bytes_));
}

void Capacity::EvictionLoop() {
  std::unique_lock lock(mu_);
  auto next_save = std::chrono::steady_clock::now() + options_.state_save_interval;
  while (!stopping_) {
    evict_cv_.wait_until(lock, next_save, [&] { return stopping_ || WantsEviction(); });
    if (stopping_) break;
    if (WantsEviction()) EvictPass(lock);
    if (std::chrono::steady_clock::now() >= next_save) {
      SaveState(lock);
      next_save = std::chrono::steady_clock::now() + options_.state_save_interval;
    }
  }
}

void Capacity::EvictPass(std::unique_lock<std::mutex>& lock) {
  bool stalled = false;
  bool pinned_candidates = false;
  // Keys whose removal failed in this pass: not offered again until the next
  // one, so a failing disk cannot spin the pass on one key.
  std::unordered_set<std::string> failed;
  // Accepting a key claims it: from then on PinForRead reports it unsafe.
  auto claim = [this, &pinned_candidates, &failed](const std::string& key) {
    if (failed.contains(key)) return false;
    const bool claimed = ClaimForEviction(key);
    if (!claimed) pinned_candidates = true;
    return claimed;
  };
  while (policy_ != nullptr && !stopping_ && used_ > EvictionTarget()) {
    std::optional<std::string> victim = policy_->Victim(claim);
    if (!victim) {
      stalled = true;
      break;
    }
    auto it = entries_.find(*victim);
    if (it == entries_.end()) {  // cannot happen: the policy tracks entries only
      EndEviction(*victim);
      policy_->Erase(*victim);
      continue;
    }
    const std::string key = *victim;
    const uint64_t version = it->second.version;
    const uint64_t size = it->second.size;
    const uint64_t generation = it->second.generation;
    lock.unlock();
    const Removal removal = hooks_.remove_body(key, version);
    EndEviction(key);
    lock.lock();
    // Not the entry removed if the body was added again meanwhile, even under
    // the same version: that body is on disk and stays counted.
    it = entries_.find(key);
    const bool same = it != entries_.end() && it->second.generation == generation;
    if (removal == Removal::kFailed) {
      failed.insert(key);
    } else if (removal == Removal::kRemoved) {
      ++counters_.evictions;
      counters_.evicted_bytes += size;
      if (same) {
        policy_->Evict(key);  // before Forget: the policy records how the key left
        it->second.evictable = false;
        Forget(it);
      }
      state_dirty_ = true;
    } else if (same && it->second.evictable) {
      // The journal says it may not go (not in the cold store after all,
      // deleted meanwhile): keep it out of the policy until told otherwise.
      it->second.evictable = false;
      policy_->Erase(key);
    }
    space_cv_.notify_all();
  }
  ++passes_;
  stalled_.store(stalled || policy_ == nullptr, std::memory_order_relaxed);
  stalled_on_pins_ = stalled && pinned_candidates;
  stalled_settling_ = stalled && Settling();
  stalled_at_ = changes_;
  if (stalled) {
    spdlog::debug("eviction stalled at {} of {} bytes: nothing evictable", used_, max_bytes_);
  }
  space_cv_.notify_all();
}

void Capacity::SaveState(std::unique_lock<std::mutex>& lock) {
  if (!state_dirty_ || !hooks_.save_state || policy_ == nullptr) return;
  std::vector<PolicyEntryState> state = policy_->SaveState();
  state_dirty_ = false;
  lock.unlock();
  hooks_.save_state(EncodePolicyState(state));
  lock.lock();
}

}  // namespace objstore
