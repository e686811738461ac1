// Fuzz target: the headers of a private call (cluster/auth.h). The input is
// split at newlines into method, target, tag, node, time, nonce, signature and
// body. Checks: the request as given (a signature made without the secret) is
// refused; the same facts signed with the secret are accepted exactly once
// (a replay is refused); an answer verifies only with its own signature.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "base/random.h"
#include "cluster/auth.h"

using namespace objstore;
using namespace objstore::cluster;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

constexpr int64_t kNowMs = 1'800'000'000'000;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  for (int i = 0; i < 7; ++i) {
    const size_t nl = input.find('\n');
    parts.emplace_back(input.substr(0, nl));
    input = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);
  }
  SystemRandom random;
  CallAuthenticator auth("fuzz-secret", "fuzz-tag", random);
  RequestFacts facts{parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], input};

  Check(!auth.VerifyRequest(facts, kNowMs).ok());
  SignedHeaders real = auth.SignRequest(facts.method, facts.target, facts.node, facts.body);

  // The facts as this node would sign them now: accepted once, then a replay.
  RequestFacts signed_facts{facts.method, facts.target, auth.tag(), facts.node,
                            real.time_ms, real.nonce,   real.signature, facts.body};
  CallAuthenticator fresh("fuzz-secret", "fuzz-tag", random);
  const int64_t now = std::stoll(real.time_ms);
  Check(fresh.VerifyRequest(signed_facts, now).ok());
  Check(fresh.VerifyRequest(signed_facts, now).code == "replayed");

  const std::string answer_sig = auth.SignResponse(200, facts.nonce, facts.body);
  Check(auth.VerifyResponse(200, facts.nonce, facts.body, answer_sig));
  Check(auth.VerifyResponse(200, facts.nonce, facts.body, parts[6]) == (parts[6] == answer_sig));
  return 0;
}
