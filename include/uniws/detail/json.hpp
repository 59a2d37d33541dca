// uniws/detail/json.hpp - just enough JSON for building envelopes without a JSON library:
// string escaping (UTF-8 checked) and a validator for JSON text supplied by users.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace uniws::detail {

inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

/// Length of the well-formed UTF-8 sequence at s[i] (1-4), or 0 if it is not well formed
/// (overlong forms, surrogates and code points above U+10FFFF are not).
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  auto cont = [&](std::size_t k) {
    return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
  };
  const unsigned char b1 = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (b0 == 0xE0 && b1 < 0xA0) return 0;   // overlong
    if (b0 == 0xED && b1 >= 0xA0) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (b0 == 0xF0 && b1 < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && b1 >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

/// Appends `s` as a quoted JSON string. Quotes, backslashes and every control character are
/// escaped (U+2028/U+2029 too, so the text is also safe inside JavaScript); each byte that
/// is not part of well-formed UTF-8 becomes U+FFFD, so the output is always valid JSON.
inline void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  const auto plain = [](unsigned char c) { return c >= 0x20 && c < 0x7F && c != '"' && c != '\\'; };
  out.reserve(out.size() + s.size() + 2);
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    // A run of bytes that need no escape goes in with one append.
    std::size_t end = i;
    while (end < s.size() && plain(static_cast<unsigned char>(s[end]))) ++end;
    if (end != i) {
      out.append(s.data() + i, end - i);
      i = end;
      continue;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            out += "\\u00";
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xF]);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      append_utf8(out, 0xFFFD);
      ++i;
    } else if (n == 3 && c == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(s[i + 2]) == 0xA8 ||
                static_cast<unsigned char>(s[i + 2]) == 0xA9)) {
      out += static_cast<unsigned char>(s[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
      i += 3;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  out.push_back('"');
}

/// Checks that `text` is exactly one JSON value (RFC 8259) with nesting at most
/// `max_depth`. Returns the offset of the first error, or npos if the text is valid.
class json_validator {
 public:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  static std::size_t first_error(std::string_view text, int max_depth = 64) noexcept {
    json_validator v{text, 0, max_depth};
    v.skip_ws();
    if (!v.value(0)) return v.pos_;
    v.skip_ws();
    return v.pos_ == text.size() ? npos : v.pos_;
  }

 private:
  json_validator(std::string_view s, std::size_t pos, int max_depth) noexcept
      : s_(s), pos_(pos), max_depth_(max_depth) {}

  std::string_view s_;
  std::size_t pos_;
  int max_depth_;

  bool at_end() const noexcept { return pos_ >= s_.size(); }
  char peek() const noexcept { return at_end() ? '\0' : s_[pos_]; }
  void skip_ws() noexcept {
    while (!at_end() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool literal(std::string_view word) noexcept {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

  bool value(int depth) noexcept {
    switch (peek()) {
      case '{':
        return object(depth + 1);
      case '[':
        return array(depth + 1);
      case '"':
        return string();
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }

  bool object(int depth) noexcept {
    return sequence(depth, '}', [&]() noexcept {
      if (peek() != '"' || !string()) return false;
      skip_ws();
      if (peek() != ':') return false;
      ++pos_;
      skip_ws();
      return value(depth);
    });
  }

  bool array(int depth) noexcept {
    return sequence(depth, ']', [&]() noexcept { return value(depth); });
  }

  // An object's or an array's body: elements separated by commas up to `close`.
  template <class Element>
  bool sequence(int depth, char close, Element element) noexcept {
    if (depth > max_depth_) return false;
    ++pos_;  // '{' or '['
    skip_ws();
    if (peek() == close) {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (!element()) return false;
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != close) return false;
      ++pos_;
      return true;
    }
  }

  static bool is_hex(char c) noexcept {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }

  bool string() noexcept {
    ++pos_;  // '"'
    while (!at_end()) {
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++pos_;
        const char e = peek();
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k)
            if (pos_ + static_cast<std::size_t>(k) >= s_.size() ||
                !is_hex(s_[pos_ + static_cast<std::size_t>(k)]))
              return false;
          pos_ += 5;
        } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                   e == 't') {
          ++pos_;
        } else {
          return false;
        }
        continue;
      }
      const std::size_t n = utf8_sequence_length(s_, pos_);
      if (n == 0) return false;
      pos_ += n;
    }
    return false;
  }

  bool number() noexcept {
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (is_digit(peek())) {
      while (is_digit(peek())) ++pos_;
    } else {
      return false;
    }
    if (peek() == '.') {
      ++pos_;
      if (!is_digit(peek())) return false;
      while (is_digit(peek())) ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!is_digit(peek())) return false;
      while (is_digit(peek())) ++pos_;
    }
    return true;
  }
};

}  // namespace uniws::detail
