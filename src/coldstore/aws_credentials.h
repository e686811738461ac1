// AwsCredentials: where the S3 client's keys come from, in the order the AWS
// SDKs use: the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN), then the shared credentials file (~/.aws/credentials or
// AWS_SHARED_CREDENTIALS_FILE), then the config file (~/.aws/config or
// AWS_CONFIG_FILE), for the profile AWS_PROFILE (default "default").
// Pure functions of their inputs; the environment is passed in for tests.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "base/status.h"

namespace objstore {

struct AwsCredentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // empty unless temporary credentials
  std::string source;         // where they were found, for logs (never the secret)
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// The process environment.
std::optional<std::string> ProcessEnv(const std::string& name);

// NotFound when no source has both keys; the message lists what was tried.
Result<AwsCredentials> LoadAwsCredentials(const EnvLookup& env = ProcessEnv);

// The region of the profile in the config file, if any.
std::optional<std::string> LoadAwsProfileRegion(const EnvLookup& env = ProcessEnv);

}  // namespace objstore
