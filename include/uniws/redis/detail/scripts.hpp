// uniws/redis/detail/scripts.hpp - the Lua scripts both Redis brokers run (one Redis, or the
// user's shard of a Redis Cluster: every key a script touches carries the user's hash tag),
// and the parsing of their answers.
#pragma once

#include <uniws/broker.hpp>
#include <uniws/history.hpp>
#include <uniws/message.hpp>

#include <hiredis/hiredis.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace uniws::redis::detail {

// KEYS: seq, channel, history stream, epoch. ARGV: floor, "<thread length> <thread>",
// envelope before and after its seq, a new epoch, history_events, thread, history_age in s,
// the publish command (PUBLISH, or SPUBLISH on a cluster's shard).
// INCR the user's counter (never below the node's floor); a missing epoch starts a new
// history (the old stream, if any, goes); XADD the envelope with that seq as its id; publish
// "<seq> <thread length> <thread><envelope>"; return the seq. Atomic: the channel and the
// stream are in seq order.
inline constexpr const char* publish_script =
    "local s = redis.call('INCR', KEYS[1]) "
    "local floor = tonumber(ARGV[1]) "
    "if s <= floor then s = floor + 1 redis.call('SET', KEYS[1], s) end "
    "local env = ARGV[3] .. s .. ARGV[4] "
    "if redis.call('EXISTS', KEYS[4]) == 0 then redis.call('DEL', KEYS[3]) redis.call('SET', KEYS[4], "
    "ARGV[5]) end "
    "local t = redis.call('TIME') "
    "redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], s .. '-0', 't', ARGV[7], 'e', env, "
    "  'ms', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) "
    "redis.call('EXPIRE', KEYS[3], ARGV[8]) redis.call('EXPIRE', KEYS[4], ARGV[8]) "
    "redis.call(ARGV[9], KEYS[2], s .. ' ' .. ARGV[2] .. env) "
    "return s";

// KEYS: seq, history stream, epoch. ARGV: after ("" for a plain join), a new epoch,
// thread, history_age in s, history_events. Returns {epoch, last seq} and, to resume,
// {complete 0|1, seq, envelope, seq, envelope, ...}: the thread's events after `after`.
// Complete: `after` is within [the last seq the stream no longer holds, the last seq], and
// no event after it is older than history_age.
inline constexpr const char* read_script =
    "local epoch = redis.call('GET', KEYS[3]) "
    "if not epoch then epoch = ARGV[2] redis.call('SET', KEYS[3], epoch, 'EX', ARGV[4]) end "
    "local last = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "if ARGV[1] == '' then return {epoch, last} end "
    "local after = tonumber(ARGV[1]) "
    "local gone = last "
    "local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1) "
    "if #first > 0 then gone = tonumber(string.match(first[1][1], '^(%d+)')) - 1 end "
    "local t = redis.call('TIME') "
    "local oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[4]) * 1000 "
    "local complete = after >= gone and after <= last "
    "local out = {epoch, last, 0} "
    "if not complete then return out end "
    "local entries = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', tonumber(ARGV[5]) * 2) "
    "for i, e in ipairs(entries) do "
    "  local f = {} for k = 1, #e[2], 2 do f[e[2][k]] = e[2][k + 1] end "
    "  if i == 1 and tonumber(f['ms']) < oldest then return out end "
    "  if f['t'] == ARGV[3] then out[#out + 1] = tonumber(string.match(e[1], '^(%d+)')) out[#out + 1] = "
    "f['e'] end "
    "end "
    "out[3] = 1 "
    "return out";

// What a node missed while it was not subscribed to a user's channel. KEYS: seq, history
// stream. ARGV: after ("" when the node knows nothing yet), history_events. Returns
// {last seq, complete 0|1, seq, thread, envelope, ...}: every thread's events after `after`;
// complete when the stream still holds all of them.
inline constexpr const char* missed_script =
    "local last = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "if ARGV[1] == '' then return {last, 1} end "
    "local after = tonumber(ARGV[1]) "
    "if after >= last then return {last, 1} end "
    "local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1) "
    "if #first == 0 or tonumber(string.match(first[1][1], '^(%d+)')) - 1 > after then return {last, 0} end "
    "local out = {last, 1} "
    "for _, e in ipairs(redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', tonumber(ARGV[2]) * "
    "2)) do "
    "  local f = {} for k = 1, #e[2], 2 do f[e[2][k]] = e[2][k + 1] end "
    "  out[#out + 1] = tonumber(string.match(e[1], '^(%d+)')) out[#out + 1] = f['t'] out[#out + 1] = f['e'] "
    "end "
    "return out";

inline stored_history parse_history(const redisReply* reply) {
  stored_history h;
  if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) return h;
  const redisReply* epoch = reply->element[0];
  if (epoch->type != REDIS_REPLY_STRING) return h;
  const auto parsed = history_epoch::parse(std::string_view(epoch->str, epoch->len));
  if (!parsed || reply->element[1]->type != REDIS_REPLY_INTEGER) return h;
  h.answered = true;
  h.epoch = *parsed;
  h.last_seq = static_cast<std::uint64_t>(reply->element[1]->integer);
  if (reply->elements < 3 || reply->element[2]->type != REDIS_REPLY_INTEGER) return h;
  h.complete = reply->element[2]->integer == 1;
  for (std::size_t i = 3; i + 1 < reply->elements; i += 2) {
    const redisReply* seq = reply->element[i];
    const redisReply* envelope = reply->element[i + 1];
    if (seq->type != REDIS_REPLY_INTEGER || envelope->type != REDIS_REPLY_STRING) return stored_history{};
    h.events.emplace_back(static_cast<std::uint64_t>(seq->integer),
                          message::copy_of(std::string_view(envelope->str, envelope->len)));
  }
  return h;
}

/// The answer of missed_script.
struct missed_events {
  bool answered = false, complete = false;
  std::uint64_t last_seq = 0;
  struct event {
    std::uint64_t seq;
    std::string thread;
    message envelope;
  };
  std::vector<event> events;
};

inline missed_events parse_missed(const redisReply* reply) {
  missed_events m;
  if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
      reply->element[0]->type != REDIS_REPLY_INTEGER || reply->element[1]->type != REDIS_REPLY_INTEGER)
    return m;
  m.last_seq = static_cast<std::uint64_t>(reply->element[0]->integer);
  m.complete = reply->element[1]->integer == 1;
  for (std::size_t i = 2; i + 2 < reply->elements; i += 3) {
    const redisReply *seq = reply->element[i], *thread = reply->element[i + 1],
                     *envelope = reply->element[i + 2];
    if (seq->type != REDIS_REPLY_INTEGER || thread->type != REDIS_REPLY_STRING ||
        envelope->type != REDIS_REPLY_STRING)
      return missed_events{};
    m.events.push_back({static_cast<std::uint64_t>(seq->integer), std::string(thread->str, thread->len),
                        message::copy_of(std::string_view(envelope->str, envelope->len))});
  }
  m.answered = true;
  return m;
}

}  // namespace uniws::redis::detail
