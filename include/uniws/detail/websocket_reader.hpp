// uniws/detail/websocket_reader.hpp - the server's side of RFC 6455's framing, reading: bytes
// from a client in, messages and control frames out, no I/O.
//
// Contract:
// - read(bytes) consumes what it can and stops at the first complete event: a text or binary
//   message (all its fragments), a ping, a pong, a close, or a failure; or it uses the bytes up
//   (need_more). Bytes may arrive split anywhere.
// - A message's bytes are the caller's with take_message(); between messages the reader holds
//   no heap memory (a control frame's payload over 15 bytes excepted, until the next one).
// - Everything RFC 6455 requires a server to refuse fails the connection, with the close code
//   to send: 1002 (protocol: reserved bits or opcodes, an unmasked frame, a fragmented or
//   oversized control frame, a continuation out of place, a length not in its shortest form,
//   a bad close frame, its reason not UTF-8 included), 1007 (a text message not UTF-8, found at the first
//   byte that makes it certain), 1009 (a message longer than message_max, found at the frame
//   header that would take it past). After close or failed the reader reads nothing more.
// - It decides as Boost.Beast's reader does: tests/fuzz/websocket_reader_fuzz.cpp feeds both
//   the same bytes and compares what they make of them.
#pragma once

#include <uniws/detail/utf8_stream.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace uniws::detail {

class websocket_reader {
 public:
  enum class event : std::uint8_t { need_more, text, binary, ping, pong, close, failed };

  /// Why the connection failed, each with the close code RFC 6455 7.4.1 gives it.
  enum class failure : std::uint8_t { none, protocol_error, invalid_utf8, message_too_big };

  struct result {
    event what;
    std::size_t consumed;  ///< bytes of the input read
  };

  explicit websocket_reader(std::size_t message_max) noexcept : message_max_(message_max) {}

  /// Reads `in` up to the end of the first complete event, or all of it.
  result read(std::span<const unsigned char> in);

  /// After text or binary: the message, moved out (the reader keeps no buffer).
  [[nodiscard]] std::string take_message() noexcept { return std::exchange(message_, std::string()); }
  /// After ping or pong: its payload (valid until the next read).
  [[nodiscard]] std::string_view control_payload() const noexcept { return control_; }
  /// After close: the peer's code, 1005 (RFC 6455 7.1.5) when it sent none.
  [[nodiscard]] std::uint16_t close_code() const noexcept { return close_code_; }
  /// After close: the peer's reason.
  [[nodiscard]] std::string_view close_reason() const noexcept {
    return std::string_view(control_).substr(control_.size() >= 2 ? 2 : control_.size());
  }
  /// After failed: why.
  [[nodiscard]] failure why() const noexcept { return failure_; }
  /// After failed: the close code to send the client.
  [[nodiscard]] std::uint16_t failure_close_code() const noexcept {
    switch (failure_) {
      case failure::invalid_utf8:
        return 1007;
      case failure::message_too_big:
        return 1009;
      default:
        return 1002;
    }
  }

  /// Whether a peer may send `code` in a close frame: RFC 6455 7.4.1 and the IANA registry
  /// (1012 and 1013 were registered later), 3000 and up for applications.
  [[nodiscard]] static constexpr bool is_valid_close_code(std::uint16_t code) noexcept {
    if (code >= 1000 && code <= 1003) return true;
    if (code >= 1007 && code <= 1013) return true;
    return code >= 3000;
  }

 private:
  enum class opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };
  /// Where in a frame the next byte falls.
  enum class stage : std::uint8_t { header, payload, closed, failed };
  /// The data message under way, if any (control frames may come between its fragments).
  enum class message_kind : std::uint8_t { none, text, binary };

  static constexpr std::size_t max_header = 14;  // 2 + 8 (length) + 4 (mask)

  /// The header's size once its first two bytes are known.
  [[nodiscard]] std::size_t header_size() const noexcept {
    const std::size_t length7 = header_[1] & 0x7F;
    return 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + (header_[1] & 0x80 ? 4 : 0);
  }

  event fail(failure f) noexcept {
    failure_ = f;
    stage_ = stage::failed;
    message_ = std::string();
    return event::failed;
  }

  /// Checks a frame's kind and flags (its first two bytes) once the whole header is in, as
  /// Beast does: need_more if they are fine.
  event check_start() noexcept {
    const unsigned char b0 = header_[0], b1 = header_[1];
    if (b0 & 0x70) return fail(failure::protocol_error);  // RSV1-3: no extension was agreed
    const auto op = static_cast<opcode>(b0 & 0x0F);
    const bool fin = b0 & 0x80;
    switch (op) {
      case opcode::continuation:
        if (message_kind_ == message_kind::none) return fail(failure::protocol_error);
        break;
      case opcode::text:
      case opcode::binary:
        if (message_kind_ != message_kind::none) return fail(failure::protocol_error);
        break;
      case opcode::close:
      case opcode::ping:
      case opcode::pong:
        if (!fin || (b1 & 0x7F) > 125) return fail(failure::protocol_error);
        break;
      default:
        return fail(failure::protocol_error);
    }
    if (!(b1 & 0x80)) return fail(failure::protocol_error);  // a client masks every frame
    return event::need_more;
  }

  /// The whole header is in: starts the frame's payload, or ends a frame that has none.
  event begin_frame() noexcept {
    const std::size_t length7 = header_[1] & 0x7F;
    std::uint64_t length = length7;
    std::size_t at = 2;
    if (length7 == 126) {
      length = (std::uint64_t{header_[2]} << 8) | header_[3];
      if (length < 126) return fail(failure::protocol_error);
      at = 4;
    } else if (length7 == 127) {
      length = 0;
      for (std::size_t i = 2; i < 10; ++i) length = (length << 8) | header_[i];
      if (length < 65536) return fail(failure::protocol_error);
      at = 10;
    }
    for (std::size_t i = 0; i < 4; ++i) mask_[i] = header_[at + i];
    mask_at_ = 0;
    remaining_ = length;
    const auto op = static_cast<opcode>(header_[0] & 0x0F);
    if (op >= opcode::close) {
      control_.clear();
    } else {
      if (length > message_max_ - message_.size()) return fail(failure::message_too_big);
      // The length's top bit must be 0 (RFC 6455 5.2); a limit under 2^63 has refused it above,
      // as Beast's does.
      if (length >> 63) return fail(failure::protocol_error);
      if (op == opcode::text) message_kind_ = message_kind::text;
      if (op == opcode::binary) message_kind_ = message_kind::binary;
      // No reserve for the declared length: the buffer grows as bytes arrive, so a peer that
      // announces a large frame and sends little makes it hold little.
    }
    stage_ = stage::payload;
    return remaining_ == 0 ? end_frame() : event::need_more;
  }

  /// The frame's payload is in.
  event end_frame() noexcept {
    stage_ = stage::header;
    header_filled_ = 0;
    const auto op = static_cast<opcode>(header_[0] & 0x0F);
    const bool fin = header_[0] & 0x80;
    switch (op) {
      case opcode::ping:
        return event::ping;
      case opcode::pong:
        return event::pong;
      case opcode::close:
        return end_close();
      default:
        break;
    }
    if (!fin) return event::need_more;
    const message_kind kind = std::exchange(message_kind_, message_kind::none);
    if (kind == message_kind::binary) return event::binary;
    const bool whole = text_.complete();
    text_.reset();
    return whole ? event::text : fail(failure::invalid_utf8);
  }

  event end_close() noexcept {
    if (control_.size() == 1) return fail(failure::protocol_error);
    close_code_ = 1005;
    if (control_.size() >= 2) {
      close_code_ = static_cast<std::uint16_t>((static_cast<unsigned char>(control_[0]) << 8) |
                                               static_cast<unsigned char>(control_[1]));
      if (!is_valid_close_code(close_code_)) return fail(failure::protocol_error);
      utf8_stream reason;
      const auto* bytes = reinterpret_cast<const unsigned char*>(control_.data());
      if (!reason.feed({bytes + 2, control_.size() - 2}) || !reason.complete())
        return fail(failure::protocol_error);  // a reason is not a message: 1002, not 1007
    }
    stage_ = stage::closed;
    message_ = std::string();
    return event::close;
  }

  /// Unmasks up to `remaining_` bytes of `in` onto the frame's destination.
  std::size_t take_payload(std::span<const unsigned char> in) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size()));
    const bool control = (header_[0] & 0x0F) >= 8;
    std::string& out = control ? control_ : message_;
    const std::size_t from = out.size();
    out.resize(from + n);
    auto* dst = reinterpret_cast<unsigned char*>(out.data()) + from;
    for (std::size_t i = 0; i < n; ++i) {
      dst[i] = in[i] ^ mask_[mask_at_];
      mask_at_ = (mask_at_ + 1) & 3;
    }
    remaining_ -= n;
    return n;
  }

  std::string message_;          ///< the data message so far
  std::string control_;          ///< the last control frame's payload
  std::uint64_t remaining_ = 0;  ///< of the frame's payload
  std::size_t message_max_;
  std::array<unsigned char, max_header> header_{};
  std::array<unsigned char, 4> mask_{};
  std::uint8_t header_filled_ = 0;
  std::uint8_t mask_at_ = 0;
  stage stage_ = stage::header;
  message_kind message_kind_ = message_kind::none;
  failure failure_ = failure::none;
  utf8_stream text_;
  std::uint16_t close_code_ = 0;
};

inline websocket_reader::result websocket_reader::read(std::span<const unsigned char> in) {
  std::size_t used = 0;
  for (;;) {
    switch (stage_) {
      case stage::closed:
        return {event::close, used};
      case stage::failed:
        return {event::failed, used};
      case stage::header: {
        std::size_t want = header_filled_ < 2 ? 2 : header_size();
        while (header_filled_ < want) {
          if (used == in.size()) return {event::need_more, used};
          header_[header_filled_++] = in[used++];
          if (header_filled_ == 2) want = header_size();
        }
        if (check_start() == event::failed) return {event::failed, used};
        if (const event e = begin_frame(); e != event::need_more) return {e, used};
        break;
      }
      case stage::payload: {
        if (used == in.size()) return {event::need_more, used};
        const std::span<const unsigned char> rest = in.subspan(used);
        const std::size_t n = take_payload(rest);
        if (message_kind_ == message_kind::text && (header_[0] & 0x0F) < 8) {
          const auto* added = reinterpret_cast<const unsigned char*>(message_.data()) + message_.size() - n;
          if (!text_.feed({added, n})) return {fail(failure::invalid_utf8), used + n};
        }
        used += n;
        if (remaining_ == 0)
          if (const event e = end_frame(); e != event::need_more) return {e, used};
        break;
      }
    }
  }
}

}  // namespace uniws::detail
