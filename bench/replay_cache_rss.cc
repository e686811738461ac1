// Memory of the private API's replay cache (CallAuthenticator): RSS growth
// while N signed calls, each with its own nonce, are verified and remembered.
//   build/objstore_replay_cache_rss [N]     # default 1,000,000
// docs/SECURITY.md quotes its bytes per call.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "base/random.h"
#include "cluster/auth.h"

namespace {

long RssKib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using objstore::cluster::CallAuthenticator;
  const int calls = argc > 1 ? std::atoi(argv[1]) : 1'000'000;
  objstore::SystemRandom random;
  CallAuthenticator sender("secret", "tag", random), receiver("secret", "tag", random);
  // Signed first, so that only the receiver's cache grows while measured.
  std::vector<objstore::cluster::SignedHeaders> signed_calls;
  signed_calls.reserve(calls);
  for (int i = 0; i < calls; ++i) signed_calls.push_back(sender.SignRequest("POST", "/x", "N", ""));
  const long before = RssKib();
  int accepted = 0;
  for (const auto& h : signed_calls) {
    objstore::cluster::RequestFacts facts{"POST", "/x", "tag", "N", h.time_ms, h.nonce,
                                          h.signature, ""};
    accepted += receiver.VerifyRequest(facts, std::stoll(h.time_ms)).ok();
  }
  const long grown = RssKib() - before;
  std::printf("%d calls accepted, %zu nonces held, RSS +%ld KiB: %.0f bytes per call\n", accepted,
              receiver.remembered_nonces(), grown, grown * 1024.0 / calls);
  return accepted == calls ? 0 : 1;
}
