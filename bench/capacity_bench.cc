// The eviction bookkeeping a GET hit pays (Google Benchmark): Capacity's
// PinForRead (lock, pin, policy Access) and the pin's release, for every
// policy and for "none" (no bookkeeping), with 1 and 2 threads on one shared
// Capacity; and a policy's bare Access (no lock, no pin) for comparison.
//
// 100,000 bodies are tracked; keys are drawn from a fixed sequence with a
// Zipf-like skew (a hit stream), so both threads contend on the same mutex
// and partly on the same keys, as GETs on two event loops do.
//
// And what a save of the policy's state holds, and for how long: Capacity's
// mutex, then the journal's write lock (BM_SaveStateUnderCapacityMutex and
// the two after it; 1,000,000 keys).
//
//   ninja -C build objstore_capacity_bench && build/objstore_capacity_bench
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cache/capacity.h"
#include "journal/journal.h"

namespace objstore {
namespace {

constexpr size_t kKeys = 100'000;
constexpr size_t kStream = 1 << 20;

const std::vector<std::string>& Keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (size_t i = 0; i < kKeys; ++i)
      k.push_back("01JBENCHMARKKEY" + std::to_string(1'000'000 + i));
    return k;
  }();
  return keys;
}

// Key indexes with P(rank r) ~ 1/r (inverse-CDF of a continuous 1/x law).
const std::vector<uint32_t>& Stream() {
  static const std::vector<uint32_t> stream = [] {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<uint32_t> s(kStream);
    for (auto& x : s) {
      x = static_cast<uint32_t>(std::exp(u(rng) * std::log(static_cast<double>(kKeys)))) - 1;
    }
    return s;
  }();
  return stream;
}

std::unique_ptr<Capacity> NewCapacity(const std::string& policy) {
  CapacityOptions o;
  o.max_bytes = uint64_t{1} << 40;  // large: no eviction during the run
  o.policy = policy;
  auto c = Capacity::Open(
      o, CapacityHooks{[](const std::string&, uint64_t) { return Removal::kRefused; },
                       [](const std::string&) {}});
  for (const std::string& k : Keys()) (*c)->AddBody(k, 1, 4096, true, nullptr);
  return std::move(c).value();
}

const char* kPolicies[] = {"s3fifo", "lru", "sieve", "fifo", kNoEviction};

// One Capacity per policy, shared by the benchmark's threads.
Capacity& Shared(int policy) {
  static std::unique_ptr<Capacity> caps[std::size(kPolicies)];
  static std::once_flag once[std::size(kPolicies)];
  std::call_once(once[policy], [&] { caps[policy] = NewCapacity(kPolicies[policy]); });
  return *caps[policy];
}

void BM_HitPath(benchmark::State& state) {
  const int policy = static_cast<int>(state.range(0));
  Capacity& c = Shared(policy);
  const auto& keys = Keys();
  const auto& stream = Stream();
  size_t i = static_cast<size_t>(state.thread_index()) * (kStream / 2);
  for (auto _ : state) {
    BodyPin pin = c.PinForRead(keys[stream[i++ & (kStream - 1)]]);
    benchmark::DoNotOptimize(pin.safe());
  }
  state.SetLabel(kPolicies[policy]);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HitPath)
    ->DenseRange(0, std::size(kPolicies) - 1)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

void BM_PolicyAccess(benchmark::State& state) {
  const int policy = static_cast<int>(state.range(0));
  auto p = MakePolicy(kPolicies[policy], uint64_t{1} << 40);
  for (const std::string& k : Keys()) (*p)->Insert(k, 4096);
  const auto& keys = Keys();
  const auto& stream = Stream();
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize((*p)->Access(keys[stream[i++ & (kStream - 1)]]));
  state.SetLabel(kPolicies[policy]);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PolicyAccess)->DenseRange(0, std::size(kPolicies) - 2);

// A save of the policy's state (every policy_save_interval, 30 s, when it
// changed) for 1,000,000 tracked keys of 26 bytes (object ids), in its three
// steps: SaveState, the copy Capacity makes under its mutex (hits are then
// not recorded, reservations and evictions wait); EncodePolicyState, outside
// it; the journal's write of the blob, under the journal's write lock (PUTs'
// and deletes' commits wait).
constexpr size_t kSavedKeys = 1'000'000;

std::unique_ptr<EvictionPolicy> PolicyOfSavedKeys(const char* name) {
  auto p = std::move(MakePolicy(name, uint64_t{1} << 40)).value();
  for (size_t i = 0; i < kSavedKeys; ++i) {
    p->Insert("01JSAVEDSTATEKEY" + std::to_string(1'000'000'000 + i), 4096);
  }
  return p;
}

void BM_SaveStateUnderCapacityMutex(benchmark::State& state) {
  const char* name = kPolicies[state.range(0)];
  auto p = PolicyOfSavedKeys(name);
  for (auto _ : state) benchmark::DoNotOptimize(p->SaveState());
  state.SetLabel(name);
}
BENCHMARK(BM_SaveStateUnderCapacityMutex)
    ->DenseRange(0, std::size(kPolicies) - 2)
    ->Unit(benchmark::kMillisecond);

void BM_EncodePolicyState(benchmark::State& state) {
  const auto saved = PolicyOfSavedKeys("s3fifo")->SaveState();
  size_t bytes = 0;
  for (auto _ : state) bytes = EncodePolicyState(saved).size();
  state.counters["blob_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_EncodePolicyState)->Unit(benchmark::kMillisecond);

void BM_JournalWriteUnderWriteLock(benchmark::State& state) {
  const std::string blob = EncodePolicyState(PolicyOfSavedKeys("s3fifo")->SaveState());
  std::string dir = (std::filesystem::temp_directory_path() / "objstore-bench-XXXXXX").string();
  if (::mkdtemp(dir.data()) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  {
    auto journal = std::move(Journal::Open(dir).value());
    for (auto _ : state) {
      if (Status s = journal->PutCacheState("policy", blob); !s.ok()) {
        state.SkipWithError(s.ToString().c_str());
        break;
      }
    }
  }
  std::filesystem::remove_all(dir);
  state.counters["blob_bytes"] = static_cast<double>(blob.size());
}
BENCHMARK(BM_JournalWriteUnderWriteLock)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace objstore

BENCHMARK_MAIN();
