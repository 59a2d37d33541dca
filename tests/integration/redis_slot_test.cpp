// The Redis brokers' small parts: the cluster's key -> slot routing (detail/slot.hpp) against a real
// redis-server in cluster mode (CLUSTER KEYSLOT, asked for every key, must agree), and the
// parser of what the brokers publish on a channel.
#include "redis_process.hpp"

#include <uniws/redis/detail/posted_broker.hpp>
#include <uniws/redis/detail/slot.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using uniws::redis::detail::key_slot;
using uniws::redis::detail::user_tag;

namespace {

// CLUSTER KEYSLOT for each key, through one redis-cli reading the commands from a file.
std::vector<int> keyslots(const uniws_test::redis_process& redis, const std::vector<std::string>& keys) {
  const std::string path =
      std::filesystem::temp_directory_path() / ("uniws-keyslot-" + std::to_string(getpid()));
  {
    std::ofstream out(path);
    // --pipe-free: one command per line, each argument quoted so braces and spaces pass as they are.
    for (const auto& k : keys) {
      out << "CLUSTER KEYSLOT \"";
      for (const char c : k) {
        if (c == '"' || c == '\\') out << '\\';
        out << c;
      }
      out << "\"\n";
    }
  }
  FILE* p = popen(("redis-cli -p " + std::to_string(redis.port()) + " < " + path).c_str(), "r");
  REQUIRE(p);
  std::vector<int> slots;
  char line[64];
  while (std::fgets(line, sizeof line, p)) slots.push_back(std::atoi(line));
  pclose(p);
  std::filesystem::remove(path);
  return slots;
}

}  // namespace

TEST_CASE("key_slot agrees with CLUSTER KEYSLOT of a real redis-server, hash tags included") {
  uniws_test::redis_process redis({"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"});
  std::vector<std::string> keys = {"foo",
                                   "bar",
                                   "123456789",
                                   "{user1000}.following",
                                   "{user1000}.followers",
                                   "foo{}{bar}",
                                   "foo{{bar}}zap",
                                   "foo{bar}{zap}",
                                   "{}",
                                   "{",
                                   "}",
                                   "",
                                   "a{b",
                                   "uniws:seq:{alice}",
                                   "uniws:u:{alice}"};
  std::mt19937 random(42);
  const std::string alphabet = "ab{}:_-xyz0189";
  for (int i = 0; i < 2000; ++i) {
    std::string k;
    for (int n = static_cast<int>(random() % 12); n > 0; --n) k += alphabet[random() % alphabet.size()];
    keys.push_back(k);
  }
  const auto slots = keyslots(redis, keys);
  REQUIRE(slots.size() == keys.size());
  std::size_t agree = 0;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    INFO(keys[i]);
    CHECK(key_slot(keys[i]) == slots[i]);
    agree += key_slot(keys[i]) == slots[i];
  }
  CHECK(agree == keys.size());
}

TEST_CASE("a user's keys and channel share one slot, whatever braces the user id holds") {
  for (const std::string user : {"alice", "a{b", "a}b", "{}", "}{", "{x}", "", "_alice", "x}y{z"}) {
    INFO(user);
    const auto tag = user_tag(user);
    CHECK(key_slot("uniws:seq:" + tag) == key_slot("uniws:u:" + tag));
    CHECK(key_slot("uniws:h:" + tag) == key_slot("uniws:epoch:" + tag));
    CHECK(key_slot("uniws:seq:" + tag) == key_slot("uniws:h:" + tag));
  }
  // Distinct users keep distinct names even when their tags are alike.
  CHECK(user_tag("ab") != user_tag("a{b"));
  CHECK(user_tag("_ab") != user_tag("a{b"));
  CHECK(user_tag("{}") != user_tag(""));
}

TEST_CASE("a channel message is taken apart, and a cut or malformed one is refused") {
  using uniws::redis::detail::parse_channel_message;
  const auto m = parse_channel_message("42 2 t1{\"type\":\"x\"}");
  REQUIRE(m);
  CHECK(m->seq == 42);
  CHECK(m->thread == "t1");
  CHECK(m->envelope == "{\"type\":\"x\"}");
  const auto empty_thread = parse_channel_message("7 0 {}");
  REQUIRE(empty_thread);
  CHECK(empty_thread->thread.empty());
  CHECK(empty_thread->envelope == "{}");
  for (const char* bad : {"", "42", "42 ", "42 2", "42 9 t1{}", "x 2 t1{}", "42 y t1{}"}) {
    INFO(bad);
    CHECK_FALSE(parse_channel_message(bad));
  }
}
