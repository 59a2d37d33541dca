// uniws/connection.hpp - the transport vocabulary: what the manager needs of a live client
// connection (the `connection` concept), and the ids, close codes and send results it speaks.
#pragma once

#include <uniws/message.hpp>

#include <concepts>
#include <cstdint>
#include <string_view>
#include <utility>

namespace uniws {

/// Identifies a connection within its user's manager.
using connection_id = std::uint64_t;

/// WebSocket close codes the library uses (RFC 6455, section 7.4.1).
enum class close_code : std::uint16_t {
  normal = 1000,
  going_away = 1001,
  policy_violation = 1008,
  message_too_big = 1009,
  try_again_later = 1013,
};

/// What a non-blocking send did.
enum class send_result : std::uint8_t {
  queued,   ///< accepted for delivery
  dropped,  ///< accepted, but the queue was full: a message (this or an older one) was dropped and counted
  closed,   ///< refused: the connection is closed
  closed_slow,  ///< refused: the queue was full and the policy closed the connection as a slow consumer
};

/// A live client connection as the manager sees it: an id, a send that never blocks, and a
/// close. Its transport (a WebSocket session, a test double) does the actual I/O.
template <class C>
concept connection = requires(C& c, const C& cc, message m, close_code code) {
  { cc.id() } noexcept -> std::convertible_to<connection_id>;
  { c.try_send(std::move(m)) } -> std::same_as<send_result>;
  c.close(code);
};

}  // namespace uniws
