// uniws's RFC 6455 reader (uniws/detail/websocket_reader.hpp): what it makes of a client's
// bytes, split anywhere, and that it makes the same of them as Boost.Beast's reader: named
// cases for every rule, then generated streams of frames, valid and broken.
#include "websocket_differential.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

using bytes = std::vector<unsigned char>;
using uniws_test::observed;

/// How a test frame's length is written: the shortest form (as RFC 6455 requires), or a longer
/// one (which a server refuses).
enum class length_form { shortest, sixteen_bits, sixty_four_bits };

struct frame_spec {
  unsigned opcode = 1;
  bool fin = true;
  std::string payload;
  bool masked = true;
  unsigned rsv = 0;  // 0..7, RSV1 the highest
  length_form form = length_form::shortest;
  std::uint32_t mask = 0x37FA213D;
};

void append_frame(bytes& out, const frame_spec& f) {
  out.push_back(static_cast<unsigned char>((f.fin ? 0x80 : 0) | (f.rsv << 4) | f.opcode));
  const std::uint64_t n = f.payload.size();
  const unsigned char mask_bit = f.masked ? 0x80 : 0;
  length_form form = f.form;
  if (form == length_form::shortest)
    form = n < 126 ? form : n < 65536 ? length_form::sixteen_bits : length_form::sixty_four_bits;
  if (form == length_form::shortest) {
    out.push_back(static_cast<unsigned char>(mask_bit | n));
  } else if (form == length_form::sixteen_bits) {
    out.push_back(mask_bit | 126);
    out.push_back(static_cast<unsigned char>(n >> 8));
    out.push_back(static_cast<unsigned char>(n));
  } else {
    out.push_back(mask_bit | 127);
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<unsigned char>(n >> (8 * i)));
  }
  unsigned char key[4] = {static_cast<unsigned char>(f.mask >> 24), static_cast<unsigned char>(f.mask >> 16),
                          static_cast<unsigned char>(f.mask >> 8), static_cast<unsigned char>(f.mask)};
  if (f.masked) out.insert(out.end(), key, key + 4);
  for (std::size_t i = 0; i < f.payload.size(); ++i)
    out.push_back(static_cast<unsigned char>(f.payload[i]) ^ (f.masked ? key[i % 4] : 0));
}

bytes frames(std::initializer_list<frame_spec> specs) {
  bytes out;
  for (const frame_spec& f : specs) append_frame(out, f);
  return out;
}

std::string close_payload(unsigned code, std::string reason = {}) {
  std::string p{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  return p + reason;
}

constexpr std::size_t limit = 1000;

/// Reads `in` whole, then split at every byte, then in uneven pieces: all three must agree, and
/// agree with Beast. Returns what uniws's reader made of it.
observed read_everywhere(const bytes& in) {
  const observed whole = uniws_test::read_with_uniws(in, limit);
  const std::size_t one[] = {1}, uneven[] = {3, 1, 7, 2, 13};
  CHECK(uniws_test::read_with_uniws(in, limit, one) == whole);
  CHECK(uniws_test::read_with_uniws(in, limit, uneven) == whole);
  CHECK(uniws_test::read_with_beast(in, limit) == whole);
  return whole;
}

std::string hex(std::string_view s) { return uniws_test::hex(s); }

}  // namespace

TEST_CASE("messages: text, binary, empty, fragmented with control frames between") {
  const auto in = frames({{.opcode = 1, .payload = "hello"},
                          {.opcode = 2, .payload = std::string("\0\xff", 2)},
                          {.opcode = 1, .payload = ""},
                          {.opcode = 1, .fin = false, .payload = "fra"},
                          {.opcode = 9, .payload = "are you there"},
                          {.opcode = 0, .fin = false, .payload = "gme"},
                          {.opcode = 10, .payload = ""},
                          {.opcode = 0, .fin = true, .payload = "nted"}});
  CHECK(read_everywhere(in) == observed{"text " + hex("hello"), "binary 00ff", "text ",
                                        "ping " + hex("are you there"), "pong ", "text " + hex("fragmented"),
                                        "more"});
}

TEST_CASE("lengths: 7, 16 and 64 bits, each at its edges") {
  for (const std::size_t n : {125u, 126u, 1000u}) {
    const std::string payload(n, 'x');
    CHECK(read_everywhere(frames({{.opcode = 2, .payload = payload}})) ==
          observed{"binary " + hex(payload), "more"});
  }
  // 64 bits is refused at the limit already; read with a larger one.
  const std::string big(70000, 'y');
  const auto in = frames({{.opcode = 2, .payload = big}});
  CHECK(uniws_test::read_with_uniws(in, 100000) == observed{"binary " + hex(big), "more"});
  CHECK(uniws_test::read_with_beast(in, 100000) == uniws_test::read_with_uniws(in, 100000));
}

TEST_CASE("close: with and without a code, with a reason, and nothing read after it") {
  CHECK(read_everywhere(frames({{.opcode = 8, .payload = ""}, {.opcode = 1, .payload = "after"}})) ==
        observed{"close 1005 "});
  CHECK(read_everywhere(frames({{.opcode = 8, .payload = close_payload(1000, "bye")}})) ==
        observed{"close 1000 " + hex("bye")});
  CHECK(read_everywhere(frames({{.opcode = 8, .payload = close_payload(4321)}})) == observed{"close 4321 "});
  CHECK(read_everywhere(frames({{.opcode = 8, .payload = close_payload(65535)}})) ==
        observed{"close 65535 "});
  // Mid-message.
  CHECK(read_everywhere(frames({{.opcode = 1, .fin = false, .payload = "par"},
                                {.opcode = 8, .payload = close_payload(1001)}})) == observed{"close 1001 "});
}

TEST_CASE("protocol errors close with 1002") {
  const observed fail_1002{"fail 1002"};
  SECTION("reserved bits, no extension agreed") {
    for (unsigned rsv = 1; rsv < 8; ++rsv)
      CHECK(read_everywhere(frames({{.payload = "x", .rsv = rsv}})) == fail_1002);
  }
  SECTION("reserved opcodes") {
    for (unsigned op : {3u, 4u, 5u, 6u, 7u, 11u, 12u, 13u, 14u, 15u})
      CHECK(read_everywhere(frames({{.opcode = op, .payload = "x"}})) == fail_1002);
  }
  SECTION("an unmasked frame from a client") {
    CHECK(read_everywhere(frames({{.payload = "x", .masked = false}})) == fail_1002);
  }
  SECTION("a fragmented or oversized control frame") {
    CHECK(read_everywhere(frames({{.opcode = 9, .fin = false, .payload = "x"}})) == fail_1002);
    CHECK(read_everywhere(frames({{.opcode = 9, .payload = std::string(126, 'p')}})) == fail_1002);
    CHECK(read_everywhere(frames({{.opcode = 10, .payload = std::string(125, 'p')}})) ==
          observed{"pong " + hex(std::string(125, 'p')), "more"});
  }
  SECTION("a continuation with no message, a new message inside one") {
    CHECK(read_everywhere(frames({{.opcode = 0, .payload = "x"}})) == fail_1002);
    CHECK(read_everywhere(frames(
              {{.opcode = 1, .fin = false, .payload = "a"}, {.opcode = 2, .payload = "b"}})) == fail_1002);
  }
  SECTION("a length not in its shortest form") {
    CHECK(read_everywhere(frames({{.payload = "short", .form = length_form::sixteen_bits}})) == fail_1002);
    CHECK(read_everywhere(frames({{.payload = "short", .form = length_form::sixty_four_bits}})) == fail_1002);
  }
  SECTION("a bad close frame: one byte, a code that may not be sent") {
    CHECK(read_everywhere(frames({{.opcode = 8, .payload = "x"}})) == fail_1002);
    for (unsigned code : {0u, 999u, 1004u, 1005u, 1006u, 1014u, 1015u, 1016u, 2999u})
      CHECK(read_everywhere(frames({{.opcode = 8, .payload = close_payload(code)}})) == fail_1002);
  }
}

TEST_CASE("text that is not UTF-8 closes with 1007, at the byte that makes it certain") {
  const observed fail_1007{"fail 1007"};
  for (const std::string bad :
       {"\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5", "\x80"})
    CHECK(read_everywhere(frames({{.payload = "ok " + bad + " then more"}})) == fail_1007);
  // A character split across fragments is fine; one never finished is not.
  CHECK(read_everywhere(frames({{.opcode = 1, .fin = false, .payload = "\xe2\x82"},
                                {.opcode = 0, .payload = "\xac"}})) == observed{"text e282ac", "more"});
  CHECK(read_everywhere(frames({{.opcode = 1, .payload = "\xe2\x82"}})) == fail_1007);
  // Unfinished, with an empty last fragment: Beast lets it through (same_reading), uniws not.
  const auto empty_last =
      frames({{.opcode = 1, .fin = false, .payload = "ok \xe2\x82"}, {.opcode = 0, .payload = ""}});
  CHECK(uniws_test::read_with_uniws(empty_last, limit) == fail_1007);
  CHECK(uniws_test::read_with_beast(empty_last, limit) == observed{"text " + hex("ok \xe2\x82"), "more"});
  CHECK(uniws_test::same_reading(fail_1007, uniws_test::read_with_beast(empty_last, limit)));
  CHECK_FALSE(
      uniws_test::same_reading(observed{"fail 1002"}, uniws_test::read_with_beast(empty_last, limit)));
  // Found before the message ends: its first fragment already cannot be UTF-8.
  CHECK(read_everywhere(frames({{.opcode = 1, .fin = false, .payload = "\xff"}})) == fail_1007);
  // Binary is not looked at. A close reason is, but it is not a message: 1002, as Beast has it.
  CHECK(read_everywhere(frames({{.opcode = 2, .payload = "\xff"}})) == observed{"binary ff", "more"});
  CHECK(read_everywhere(frames({{.opcode = 8, .payload = close_payload(1000, "\xff")}})) ==
        observed{"fail 1002"});
}

TEST_CASE("a message past message_max closes with 1009 at the header that would pass it") {
  CHECK(read_everywhere(frames({{.opcode = 2, .payload = std::string(limit, 'a')}})) ==
        observed{"binary " + hex(std::string(limit, 'a')), "more"});
  // Only the header arrives: refused before any of the payload.
  bytes header = frames({{.opcode = 2, .payload = std::string(limit + 1, 'a')}});
  header.resize(8);
  CHECK(read_everywhere(header) == observed{"fail 1009"});
  // The limit is the message's, across its fragments.
  CHECK(read_everywhere(frames({{.opcode = 1, .fin = false, .payload = std::string(600, 'a')},
                                {.opcode = 0, .payload = std::string(401, 'b')}})) == observed{"fail 1009"});
}

TEST_CASE("generated streams of frames, valid and broken, read as Beast reads them") {
  std::mt19937_64 random(20261204);
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(random() % n); };
  const std::string alphabet[] = {
      "a", "z", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xff", "\xed\xa0\x80", "\x80", "\x00"};
  int compared = 0;
  for (int round = 0; round < 20000; ++round) {
    bytes in;
    bool in_message = false;
    const std::size_t frame_count = 1 + pick(6);
    for (std::size_t i = 0; i < frame_count; ++i) {
      frame_spec f;
      const std::size_t kind = pick(10);
      if (kind < 2) {
        f.opcode = 9 + static_cast<unsigned>(pick(2));  // ping, pong
      } else if (kind == 2) {
        f.opcode = 8;
      } else {
        f.opcode = in_message ? 0 : 1 + static_cast<unsigned>(pick(2));
        f.fin = pick(3) != 0;
        in_message = !f.fin;
      }
      const std::size_t length = pick(5) == 0 ? pick(1100) : pick(20);
      for (std::size_t k = 0; f.payload.size() < length && k < length; ++k)
        f.payload += pick(8) == 0 ? alphabet[pick(std::size(alphabet))]
                                  : std::string(1, static_cast<char>('a' + pick(26)));
      if (f.opcode == 8 && pick(2) == 0)
        f.payload = close_payload(
            pick(2) ? 1000 + static_cast<unsigned>(pick(20)) : static_cast<unsigned>(pick(65536)),
            f.payload.substr(0, 10));
      if (f.opcode >= 8 && f.payload.size() > 125 && pick(4) != 0) f.payload.resize(pick(126));
      f.mask = static_cast<std::uint32_t>(random());
      append_frame(in, f);
    }
    // Break some: flip a bit, cut the end, or drop a byte.
    switch (pick(4)) {
      case 0:
        in[pick(in.size())] ^= static_cast<unsigned char>(1u << pick(8));
        break;
      case 1:
        in.resize(pick(in.size() + 1));
        break;
      case 2:
        in.erase(in.begin() + static_cast<std::ptrdiff_t>(pick(in.size())));
        break;
      default:
        break;
    }
    const observed ours = uniws_test::read_with_uniws(in, limit);
    const observed beast = uniws_test::read_with_beast(in, limit);
    INFO("round " << round << ", input " << hex({reinterpret_cast<const char*>(in.data()), in.size()}));
    REQUIRE(uniws_test::same_reading(ours, beast));
    const std::size_t pieces[] = {1 + pick(9), 1 + pick(3), 1 + pick(40)};
    REQUIRE(uniws_test::read_with_uniws(in, limit, pieces) == ours);
    ++compared;
  }
  CHECK(compared == 20000);
}
