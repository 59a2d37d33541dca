// uniws/detail/utf8_stream.hpp - UTF-8 validation of text that arrives in pieces.
//
// A WebSocket text message may be split anywhere, inside a character too, across frames and
// reads; RFC 6455 8.1 wants the connection failed as soon as the bytes cannot be UTF-8. The
// validator keeps the three bytes it needs between pieces (how many continuation bytes are
// owed, and the range the next one must fall in: it rejects overlong forms, surrogates and
// code points above U+10FFFF at the byte where they become certain, RFC 3629 4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace uniws::detail {

class utf8_stream {
 public:
  /// Takes the next piece. False as soon as the bytes seen so far cannot begin valid UTF-8
  /// (the validator then stays failed).
  [[nodiscard]] constexpr bool feed(std::span<const unsigned char> piece) noexcept {
    std::size_t i = 0;
    if (owed_ == failed) return false;
    for (; i < piece.size(); ++i) {
      const unsigned char b = piece[i];
      if (owed_ == 0) {
        // A run of ASCII, the common case, needs no state.
        if (b < 0x80) continue;
        if (!start(b)) return fail();
        continue;
      }
      if (b < low_ || b > high_) return fail();
      --owed_;
      low_ = 0x80;
      high_ = 0xBF;
    }
    return true;
  }

  /// Whether the text ends on a character boundary (checked at the end of a message).
  [[nodiscard]] constexpr bool complete() const noexcept { return owed_ == 0; }

  /// Ready for the next message.
  constexpr void reset() noexcept { *this = utf8_stream(); }

 private:
  static constexpr std::uint8_t failed = 0xFF;

  /// A lead byte: how many continuation bytes follow and the range of the first of them.
  constexpr bool start(unsigned char b) noexcept {
    low_ = 0x80;
    high_ = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      owed_ = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      owed_ = 2;
      if (b == 0xE0) low_ = 0xA0;   // overlong below U+0800
      if (b == 0xED) high_ = 0x9F;  // U+D800..U+DFFF are surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      owed_ = 3;
      if (b == 0xF0) low_ = 0x90;   // overlong below U+10000
      if (b == 0xF4) high_ = 0x8F;  // above U+10FFFF
    } else {
      return false;  // a continuation byte, C0/C1 (overlong) or F5..FF
    }
    return true;
  }

  constexpr bool fail() noexcept {
    owed_ = failed;
    return false;
  }

  std::uint8_t owed_ = 0;  ///< continuation bytes still to come; `failed` once invalid
  unsigned char low_ = 0x80, high_ = 0xBF;
};

}  // namespace uniws::detail
