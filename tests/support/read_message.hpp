// tests/support/read_message.hpp - a Beast WebSocket client's blocking read of one message, as
// the tests' clients use it: the message, or nothing once the connection has closed or failed
// (the close code is then in the stream's reason()).
#pragma once

#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <optional>
#include <string>

namespace uniws_test {

template <class NextLayer>
std::optional<std::string> read_message(boost::beast::websocket::stream<NextLayer>& ws) {
  boost::beast::flat_buffer buffer;
  boost::beast::error_code ec;
  ws.read(buffer, ec);
  if (ec) return std::nullopt;
  return boost::beast::buffers_to_string(buffer.data());
}

}  // namespace uniws_test
