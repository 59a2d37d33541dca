#include <uniws/events.hpp>
#include <uniws/histogram.hpp>
#include <uniws/message.hpp>
#include <uniws/send_queue.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace std::string_literals;
using uniws::json_text;

namespace {
std::string escaped(std::string_view s) { return json_text::string(s).str(); }
bool valid_json(std::string_view s) {
  return uniws::detail::json_validator::first_error(s) == uniws::detail::json_validator::npos;
}
}  // namespace

TEST_CASE("JSON strings escape quotes, backslashes and every control character") {
  CHECK(escaped("plain") == R"("plain")");
  CHECK(escaped("say \"hi\"") == R"("say \"hi\"")");
  CHECK(escaped("a\\b") == R"("a\\b")");
  CHECK(escaped("l1\nl2\r\t\b\f") == R"("l1\nl2\r\t\b\f")");
  CHECK(escaped("\x01\x1f\x7f"s) == R"("\u0001\u001f\u007f")");
  CHECK(escaped(std::string("nul\0in", 6)) == R"("nul\u0000in")");
  CHECK(escaped("line\xE2\x80\xA8sep") == R"("line\u2028sep")");
  CHECK(escaped("para\xE2\x80\xA9sep") == R"("para\u2029sep")");  // U+2029 too: a JavaScript line break
  CHECK(escaped("\xE2\x80\xAA") == "\"\xE2\x80\xAA\"");           // U+202A is only text
  for (int c = 0; c < 0x20; ++c) {
    const std::string out = escaped(std::string(1, static_cast<char>(c)));
    INFO("control character " << c);
    CHECK(out.find(static_cast<char>(c)) == std::string::npos);
    CHECK(valid_json(out));
  }
}

TEST_CASE("well-formed UTF-8 passes through and ill-formed bytes become U+FFFD") {
  CHECK(escaped("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") ==
        "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"");
  const std::string replacement = "\xEF\xBF\xBD";
  CHECK(escaped("\xFF") == "\"" + replacement + "\"");                                      // never valid
  CHECK(escaped("\xC0\xAF") == "\"" + replacement + replacement + "\"");                    // overlong '/'
  CHECK(escaped("\xED\xA0\x80") == "\"" + replacement + replacement + replacement + "\"");  // surrogate
  CHECK(escaped("\xF4\x90\x80\x80").find(replacement) != std::string::npos);                // above U+10FFFF
  CHECK(escaped("cut \xE2\x82") == "\"cut " + replacement + replacement + "\"");            // truncated
  CHECK(valid_json(escaped("\xC3\x28\xA0\xA1\xF0\x28\x8C\xBC")));
}

TEST_CASE("json_text::parse accepts JSON and rejects everything else with the offset") {
  for (const char* ok : {"{}", "[]", "0", "-1.5e+10", "\"x\"", "true", "null",
                         " {\"a\":[1,2,{\"b\":false}]} ", "\"\\u00e9\\n\"", "[\"caf\xC3\xA9\"]"}) {
    INFO(ok);
    CHECK_NOTHROW(json_text::parse(ok));
  }
  for (const char* bad : {"", "{", "{\"a\"}", "{a:1}", "[1,]", "01", "1.", "tru", "\"unterminated",
                          "\"bad \\x\"", "{} {}", "\"raw\ncontrol\"", "[\"\xFF\"]", "NaN"}) {
    INFO(bad);
    CHECK_THROWS_AS(json_text::parse(bad), uniws::json_error);
  }
  CHECK_THROWS_WITH(json_text::parse("[1,}"), Catch::Contains("offset 3"));
  // Nesting is bounded, so hostile input cannot exhaust the stack.
  CHECK_THROWS_AS(json_text::parse(std::string(100000, '[')), uniws::json_error);
  CHECK_NOTHROW(json_text::parse(std::string(60, '[') + std::string(60, ']')));
}

TEST_CASE("json_text builders produce valid JSON") {
  const json_text obj = json_text::object({{"name", json_text::string("a \"quoted\"\n name")},
                                           {"n", json_text::number(-42)},
                                           {"ok", json_text::boolean(true)},
                                           {"none", json_text::null()},
                                           {"nested", json_text::object({{"k", json_text::string("v")}})}});
  CHECK(obj.str() == R"({"name":"a \"quoted\"\n name","n":-42,"ok":true,"none":null,"nested":{"k":"v"}})");
  CHECK(valid_json(obj.str()));
  CHECK(json_text::object().str() == "{}");
}

TEST_CASE("create_server_message and create_error_message build the protocol's envelopes") {
  const auto m = uniws::create_server_message("pong\"", json_text::object({{"t", json_text::number(1)}}));
  CHECK(m.text() == R"({"type":"pong\"","payload":{"t":1}})");
  CHECK(valid_json(m.text()));
  const auto e = uniws::create_error_message("bad_request", "thread_id is missing\n(line 2)");
  CHECK(e.text() ==
        R"js({"type":"error","code":"bad_request","message":"thread_id is missing\n(line 2)"})js");
  CHECK(valid_json(e.text()));
}

TEST_CASE("encode_event writes the envelope with seq") {
  const uniws::agent_event ev{uniws::agent_event_type::tool_completed, "t\"1", "r-9",
                              json_text::object({{"tool", json_text::string("search")}})};
  const auto m = uniws::encode_event(ev, 4);
  CHECK(m.text() ==
        R"({"type":"tool_completed","thread_id":"t\"1","run_id":"r-9","seq":4,"payload":{"tool":"search"}})");
  CHECK(valid_json(m.text()));
}

TEST_CASE("a message is one shared buffer: copies share it, the last one frees it") {
  auto m = uniws::message::copy_of("hello");
  CHECK(m.use_count() == 1);
  {
    std::vector<uniws::message> fanout(100, m);
    CHECK(m.use_count() == 101);
    for (const auto& copy : fanout) {
      CHECK(copy.shares_buffer_with(m));
      CHECK(copy.data() == m.data());  // no byte was copied
    }
  }
  CHECK(m.use_count() == 1);
  uniws::message moved = std::move(m);
  CHECK(moved.text() == "hello");
  CHECK(m.empty());  // NOLINT: moved-from is empty by contract
  CHECK(uniws::message().text().empty());
}

TEST_CASE("send_queue: bounded in messages, drop-oldest counts every drop") {
  uniws::send_queue q(
      {.max_messages = 3, .max_bytes = 1000, .policy = uniws::slow_consumer_policy::drop_oldest});
  for (int i = 0; i < 3; ++i)
    CHECK(q.push(uniws::message::copy_of(std::to_string(i))) == uniws::send_result::queued);
  CHECK(q.push(uniws::message::copy_of("3")) == uniws::send_result::dropped);
  CHECK(q.push(uniws::message::copy_of("4")) == uniws::send_result::dropped);
  CHECK(q.size() == 3);
  CHECK(q.dropped() == 2);
  CHECK(q.front().text() == "2");  // the oldest went first
  q.pop();
  CHECK(q.front().text() == "3");
}

TEST_CASE("send_queue: an emptied queue gives its ring back, a busy one keeps it") {
  uniws::send_queue q(
      {.max_messages = 100, .max_bytes = 1000, .policy = uniws::slow_consumer_policy::drop_oldest});
  CHECK(q.capacity() == 0);  // a connection that was never sent to holds no ring
  for (int i = 0; i < 5; ++i)
    REQUIRE(q.push(uniws::message::copy_of(std::to_string(i))) == uniws::send_result::queued);
  CHECK(q.capacity() == 8);
  for (int i = 0; i < 4; ++i) q.pop();
  q.shrink_to_fit();  // one message left: nothing changes
  CHECK(q.capacity() == 8);
  CHECK(q.front().text() == "4");
  q.pop();
  q.shrink_to_fit();
  CHECK(q.capacity() == 0);
  CHECK(q.bytes() == 0);
  REQUIRE(q.push(uniws::message::copy_of("again")) == uniws::send_result::queued);
  CHECK(q.front().text() == "again");
  CHECK(q.capacity() == 4);
  q.pop();
  q.shrink_to_fit(4);  // a writer keeps a few slots: the next message needs no allocation
  CHECK(q.capacity() == 4);
}

TEST_CASE("send_queue: take_front moves the oldest out in order and gives their bytes back at once") {
  uniws::queue_budget budget(1000);
  uniws::send_queue q({.max_messages = 100, .max_bytes = 1000, .budget = &budget});
  for (int i = 0; i < 3; ++i)
    REQUIRE(q.push(uniws::message::copy_of(std::to_string(i))) == uniws::send_result::queued);
  q.pop();
  q.pop();  // the ring's head is now past its start: what follows wraps around
  for (int i = 3; i < 8; ++i)
    REQUIRE(q.push(uniws::message::copy_of(std::to_string(i))) == uniws::send_result::queued);
  std::vector<uniws::message> out(4);
  REQUIRE(q.take_front(out) == 4);
  for (int i = 0; i < 4; ++i) CHECK(out[static_cast<std::size_t>(i)].text() == std::to_string(i + 2));
  CHECK(q.size() == 2);
  CHECK(q.bytes() == 2);
  CHECK(budget.bytes() == 2);
  REQUIRE(q.take_front(out) == 2);  // fewer than asked: what there is
  CHECK(out[0].text() == "6");
  CHECK(out[1].text() == "7");
  CHECK(q.empty());
  CHECK(budget.bytes() == 0);
}

TEST_CASE("histogram: a batch of observations counts as each would on its own") {
  const std::vector<std::uint64_t> values = {5, 5, 70'000, 70'000, 70'000, 5, 2'000'000'000, 120'000, 5};
  uniws::histogram one_by_one = uniws::histogram::latency(), batched = uniws::histogram::latency();
  for (const std::uint64_t v : values) one_by_one.observe(v);
  batched.observe(std::span<const std::uint64_t>(values));
  const auto a = one_by_one.read(), b = batched.read();
  CHECK(b.count == values.size());
  CHECK(b.cumulative == a.cumulative);
  CHECK(b.sum == a.sum);
  batched.observe(std::span<const std::uint64_t>());  // nothing: nothing changes
  CHECK(batched.read().count == values.size());
}

TEST_CASE("send_queue: bounded in bytes") {
  uniws::send_queue q(
      {.max_messages = 100, .max_bytes = 10, .policy = uniws::slow_consumer_policy::drop_oldest});
  CHECK(q.push(uniws::message::copy_of("12345")) == uniws::send_result::queued);
  CHECK(q.push(uniws::message::copy_of("12345")) == uniws::send_result::queued);
  CHECK(q.bytes() == 10);
  CHECK(q.push(uniws::message::copy_of("123")) == uniws::send_result::dropped);
  CHECK(q.bytes() == 8);
  CHECK(q.dropped() == 1);
  // Larger than the whole bound: can never be queued, so it is the one dropped.
  CHECK(q.push(uniws::message::copy_of(std::string(11, 'x'))) == uniws::send_result::dropped);
  CHECK(q.dropped() == 2);
  CHECK(q.size() == 2);
}

TEST_CASE("send_queue: the close policy closes the connection as slow and keeps what it had") {
  uniws::send_queue q({.max_messages = 2,
                       .max_bytes = 1000,
                       .policy = uniws::slow_consumer_policy::close,
                       .slow_close_code = uniws::close_code::policy_violation});
  CHECK(q.push(uniws::message::copy_of("a")) == uniws::send_result::queued);
  CHECK(q.push(uniws::message::copy_of("b")) == uniws::send_result::queued);
  CHECK(q.push(uniws::message::copy_of("c")) == uniws::send_result::closed_slow);
  CHECK(q.closed_as_slow());
  CHECK(q.push(uniws::message::copy_of("d")) == uniws::send_result::closed);  // once closed, just closed
  CHECK(q.size() == 2);  // queued messages stay, to be flushed before the close frame
  CHECK(q.dropped() == 0);
}

TEST_CASE("send_queue: a shared budget bounds many queues, and past it only queues with a backlog pay") {
  uniws::queue_budget budget(10);
  {
    uniws::send_queue slow({.max_messages = 100, .max_bytes = 1000, .budget = &budget});
    uniws::send_queue closing({.max_messages = 100,
                               .max_bytes = 1000,
                               .policy = uniws::slow_consumer_policy::close,
                               .budget = &budget});
    uniws::send_queue fast({.max_messages = 100, .max_bytes = 1000, .budget = &budget});
    CHECK(slow.push(uniws::message::copy_of("1234")) == uniws::send_result::queued);
    CHECK(slow.push(uniws::message::copy_of("5678")) == uniws::send_result::queued);
    CHECK(budget.bytes() == 8);
    // Over the budget: the slow queue drops its own oldest to make room, counted.
    CHECK(slow.push(uniws::message::copy_of("abcd")) == uniws::send_result::dropped);
    CHECK(slow.dropped() == 1);
    CHECK(slow.front().text() == "5678");
    CHECK(budget.bytes() == 8);
    // A queue with no backlog still takes a message: the bound is the budget plus one message each.
    CHECK(closing.push(uniws::message::copy_of("wxyz")) == uniws::send_result::queued);
    CHECK(budget.bytes() == 12);
    // Past it, a backlogged queue under the close policy is closed as slow.
    CHECK(closing.push(uniws::message::copy_of("more")) == uniws::send_result::closed_slow);
    CHECK(fast.push(uniws::message::copy_of("ok")) == uniws::send_result::queued);
    fast.pop();
    CHECK(budget.bytes() == 12);
  }
  CHECK(budget.bytes() == 0);  // queues give back what they held when they go
}

TEST_CASE("send_queue: wraps around its ring in order") {
  uniws::send_queue q({.max_messages = 8, .max_bytes = 1 << 20});
  int next_in = 0, next_out = 0;
  for (int round = 0; round < 100; ++round) {
    for (int i = 0; i < 5; ++i)
      CHECK(q.push(uniws::message::copy_of(std::to_string(next_in++))) == uniws::send_result::queued);
    for (int i = 0; i < 5; ++i) {
      CHECK(q.front().text() == std::to_string(next_out++));
      q.pop();
    }
  }
  CHECK(q.empty());
  CHECK(q.bytes() == 0);
}
