// uniws/message.hpp - one immutable, reference-counted byte buffer per event, and the
// builders for the server's JSON envelopes.
#pragma once

#include <uniws/detail/json.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace uniws {

/// Thrown for text that is not valid JSON where JSON is required.
class json_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A piece of JSON text known to be valid: a payload for create_server_message. Built only
/// through its named constructors, so a plain string can never be mistaken for JSON.
class json_text {
 public:
  /// Validates `text` as exactly one JSON value; throws json_error naming the offset.
  static json_text parse(std::string_view text) {
    const std::size_t at = detail::json_validator::first_error(text);
    if (at != detail::json_validator::npos)
      throw json_error("uniws: invalid JSON at offset " + std::to_string(at));
    return json_text(std::string(text));
  }
  /// A JSON string holding `s` (escaped; ill-formed UTF-8 bytes become U+FFFD).
  static json_text string(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    detail::append_json_string(out, s);
    return json_text(std::move(out));
  }
  /// A JSON number.
  static json_text number(std::int64_t v) { return json_text(std::to_string(v)); }
  /// A JSON true or false.
  static json_text boolean(bool v) { return json_text(v ? "true" : "false"); }
  /// JSON null.
  static json_text null() { return json_text("null"); }
  /// An object from key/value pairs, in the given order.
  static json_text object(std::initializer_list<std::pair<std::string_view, json_text>> members = {}) {
    std::string out = "{";
    for (const auto& [key, value] : members) {
      if (out.size() > 1) out.push_back(',');
      detail::append_json_string(out, key);
      out.push_back(':');
      out += value.text_;
    }
    out.push_back('}');
    return json_text(std::move(out));
  }

  /// The JSON text.
  [[nodiscard]] const std::string& str() const noexcept { return text_; }

 private:
  explicit json_text(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

/// An immutable byte buffer shared by reference count. Copying a message copies a pointer
/// and increments a count: fanning one message out to N connections allocates nothing.
class message {
 public:
  message() noexcept = default;

  /// The clock of a message's stamp.
  using clock = std::chrono::steady_clock;

  /// A message holding a copy of `bytes` (the one allocation of its lifetime). An event's
  /// message is stamped with when it was emitted: the delivery latency is measured from
  /// there. Others (replies, errors) are not stamped and not measured.
  static message copy_of(std::string_view bytes, clock::time_point emitted = {}) {
    void* raw = ::operator new(sizeof(header) + bytes.size());
    auto* h = ::new (raw) header{bytes.size(), emitted.time_since_epoch().count()};
    if (!bytes.empty()) std::memcpy(static_cast<char*>(raw) + sizeof(header), bytes.data(), bytes.size());
    return message(h);
  }

  /// Shares the text (one reference count more, no copy).
  message(const message& other) noexcept : header_(other.header_) {
    if (header_) header_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  /// Takes the text over.
  message(message&& other) noexcept : header_(std::exchange(other.header_, nullptr)) {}
  /// Shares or takes `other`'s text.
  message& operator=(message other) noexcept {
    std::swap(header_, other.header_);
    return *this;
  }
  ~message() {
    if (header_ && header_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      header_->~header();
      ::operator delete(header_);
    }
  }

  /// The frame's text.
  [[nodiscard]] std::string_view text() const noexcept {
    return header_ ? std::string_view(reinterpret_cast<const char*>(header_) + sizeof(header), header_->size)
                   : std::string_view();
  }
  /// The text's first byte.
  [[nodiscard]] const char* data() const noexcept { return text().data(); }
  /// The text's length in bytes.
  [[nodiscard]] std::size_t size() const noexcept { return header_ ? header_->size : 0; }
  /// Whether the text is empty.
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }

  /// When its event was emitted; the clock's epoch if it is not an event's.
  [[nodiscard]] clock::time_point emitted_at() const noexcept {
    return clock::time_point(clock::duration(header_ ? header_->emitted : 0));
  }
  /// Whether it carries the time it was made (for delivery latency).
  [[nodiscard]] bool is_stamped() const noexcept { return header_ && header_->emitted != 0; }
  /// How many messages share this buffer (for tests and diagnostics).
  [[nodiscard]] long use_count() const noexcept {
    return header_ ? static_cast<long>(header_->refs.load(std::memory_order_relaxed)) : 0;
  }
  /// True when both share one buffer.
  [[nodiscard]] bool shares_buffer_with(const message& other) const noexcept {
    return header_ == other.header_;
  }

 private:
  struct header {
    header(std::size_t n, clock::rep e) noexcept : size(n), emitted(e) {}
    std::atomic<std::uint32_t> refs{1};
    std::size_t size;
    clock::rep emitted;  ///< 0: not stamped
  };
  explicit message(header* h) noexcept : header_(h) {}
  header* header_ = nullptr;
};

/// `{"type":TYPE,"payload":PAYLOAD}`: a server event for a client.
inline message create_server_message(std::string_view type, const json_text& payload) {
  std::string out;
  out.reserve(type.size() + payload.str().size() + 24);
  out += "{\"type\":";
  detail::append_json_string(out, type);
  out += ",\"payload\":";
  out += payload.str();
  out.push_back('}');
  return message::copy_of(out);
}

/// `{"type":"error","code":CODE,"message":TEXT}`: the error event of the wire protocol.
inline message create_error_message(std::string_view code, std::string_view text) {
  std::string out;
  out.reserve(code.size() + text.size() + 40);
  out += "{\"type\":\"error\",\"code\":";
  detail::append_json_string(out, code);
  out += ",\"message\":";
  detail::append_json_string(out, text);
  out.push_back('}');
  return message::copy_of(out);
}

}  // namespace uniws
