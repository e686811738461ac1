#include "coldstore/aws_credentials.h"

#include <cstdlib>
#include <fstream>
#include <map>

namespace objstore {
namespace {

using Section = std::map<std::string, std::string>;

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Reads an INI file into section -> key -> value. Missing file: empty.
std::map<std::string, Section> ReadIni(const std::string& path) {
  std::map<std::string, Section> out;
  std::ifstream in(path);
  std::string line, section;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(line.substr(1, line.size() - 2));
      continue;
    }
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    out[section][Trim(line.substr(0, eq))] = Trim(line.substr(eq + 1));
  }
  return out;
}

std::string HomeFile(const EnvLookup& env, const char* override_var, const char* rel) {
  if (auto p = env(override_var); p && !p->empty()) return *p;
  auto home = env("HOME");
  return (home ? *home : std::string(".")) + "/" + rel;
}

std::string Profile(const EnvLookup& env) {
  auto p = env("AWS_PROFILE");
  return p && !p->empty() ? *p : "default";
}

std::optional<AwsCredentials> FromSection(const Section& s, const std::string& source) {
  auto k = s.find("aws_access_key_id"), v = s.find("aws_secret_access_key");
  if (k == s.end() || v == s.end() || k->second.empty() || v->second.empty()) return std::nullopt;
  AwsCredentials c{k->second, v->second, "", source};
  if (auto t = s.find("aws_session_token"); t != s.end()) c.session_token = t->second;
  return c;
}

}  // namespace

std::optional<std::string> ProcessEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

Result<AwsCredentials> LoadAwsCredentials(const EnvLookup& env) {
  auto key = env("AWS_ACCESS_KEY_ID"), secret = env("AWS_SECRET_ACCESS_KEY");
  if (key && secret && !key->empty() && !secret->empty()) {
    AwsCredentials c{*key, *secret, "", "environment"};
    if (auto t = env("AWS_SESSION_TOKEN")) c.session_token = *t;
    return c;
  }
  const std::string profile = Profile(env);
  const std::string creds_path = HomeFile(env, "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
  auto creds = ReadIni(creds_path);
  if (auto it = creds.find(profile); it != creds.end()) {
    if (auto c = FromSection(it->second, creds_path + " [" + profile + "]")) return *c;
  }
  const std::string config_path = HomeFile(env, "AWS_CONFIG_FILE", ".aws/config");
  auto config = ReadIni(config_path);
  const std::string section = profile == "default" ? "default" : "profile " + profile;
  if (auto it = config.find(section); it != config.end()) {
    if (auto c = FromSection(it->second, config_path + " [" + section + "]")) return *c;
  }
  return Status::NotFound("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                          "or profile '" + profile + "' in " + creds_path + " or " + config_path);
}

std::optional<std::string> LoadAwsProfileRegion(const EnvLookup& env) {
  const std::string profile = Profile(env);
  auto config = ReadIni(HomeFile(env, "AWS_CONFIG_FILE", ".aws/config"));
  const std::string section = profile == "default" ? "default" : "profile " + profile;
  if (auto it = config.find(section); it != config.end()) {
    if (auto r = it->second.find("region"); r != it->second.end() && !r->second.empty()) {
      return r->second;
    }
  }
  return std::nullopt;
}

}  // namespace objstore
