// server_stream.hpp - the byte stream every session runs on: the accepted socket, or TLS over it
// with --tls-cert (docs/protocol.md §T). Chosen per connection at run time, so the HTTP session
// and the connection (connection.hpp) have one type either way.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>

#include <cstddef>
#include <optional>
#include <utility>
#include <variant>

namespace golden_path {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Each connection's handlers run on its loop, one thread (event_loops.hpp). Naming the executor's
// type, rather than any_io_executor, keeps every operation an idle connection has pending smaller
// (the executor and its work guards are stored in each).
using connection_executor = net::io_context::executor_type;
using socket_type = net::basic_stream_socket<tcp, connection_executor>;
using tls_stream = boost::beast::ssl_stream<socket_type>;

/// An AsyncStream over a socket, plain or TLS. Beast's ssl_stream keeps its state behind one
/// pointer, so a plain connection pays a word for the choice.
class server_stream {
 public:
  using executor_type = connection_executor;
  using next_layer_type = socket_type;

  explicit server_stream(socket_type socket) : stream_(std::in_place_index<0>, std::move(socket)) {}
  server_stream(socket_type socket, net::ssl::context& tls)
      : stream_(std::in_place_index<1>, std::move(socket), tls) {}

  [[nodiscard]] bool is_tls() const noexcept { return stream_.index() == 1; }
  [[nodiscard]] executor_type get_executor() noexcept { return socket().get_executor(); }
  /// The TCP socket in both cases (Beast's get_lowest_layer stops here).
  [[nodiscard]] socket_type& next_layer() noexcept {
    return is_tls() ? std::get<1>(stream_).next_layer() : std::get<0>(stream_);
  }
  [[nodiscard]] socket_type& socket() noexcept { return next_layer(); }
  [[nodiscard]] tls_stream& tls() { return std::get<1>(stream_); }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return net::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (is_tls())
            std::get<1>(stream_).async_read_some(b, std::move(handler));
          else
            std::get<0>(stream_).async_read_some(b, std::move(handler));
        },
        token, buffers);
  }

  /// What the socket has now, without waiting (the connection reads it so while idle it holds no
  /// buffer and no pending read); nullopt under TLS, whose records OpenSSL reads.
  template <class MutableBuffers>
  std::optional<std::size_t> try_read_some(const MutableBuffers& buffers, boost::beast::error_code& ec) {
    if (is_tls()) return std::nullopt;
    return socket().read_some(buffers, ec);  // the connection put the socket in non-blocking mode
  }

  /// What the socket takes now without waiting (the connection writes at once with it); nullopt
  /// under TLS, whose records only the asynchronous path writes.
  template <class ConstBuffers>
  std::optional<std::size_t> try_write_some(const ConstBuffers& buffers, boost::beast::error_code& ec) {
    if (is_tls()) return std::nullopt;
    return socket().write_some(buffers, ec);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return net::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (is_tls())
            std::get<1>(stream_).async_write_some(b, std::move(handler));
          else
            std::get<0>(stream_).async_write_some(b, std::move(handler));
        },
        token, buffers);
  }

 private:
  std::variant<socket_type, tls_stream> stream_;
};

/// The TLS context of --tls-cert and --tls-key: TLS 1.2 and later.
inline net::ssl::context make_tls_context(const std::string& cert_file, const std::string& key_file) {
  net::ssl::context tls(net::ssl::context::tls_server);
  tls.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                  net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1 |
                  net::ssl::context::single_dh_use);
  tls.use_certificate_chain_file(cert_file);
  tls.use_private_key_file(key_file, net::ssl::context::pem);
  return tls;
}

}  // namespace golden_path
