// uniws-golden-path-client: walks the golden path against a uniws-golden-path server.
// Logs in, opens a WebSocket with the token, runs an agent, and prints each event with its
// arrival time until agent_completed. Exit status 0 when the run's events arrived in order.
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = net::ip::tcp;

namespace {

struct options {
  std::string host = "127.0.0.1";
  std::string port = "8080";
  std::string user = "alice";
  std::string password = "alice-pw";
  std::string thread = "t1";
  std::string message = "hello, agent";
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "uniws-golden-path-client: " << problem << "\n"
            << "usage: uniws-golden-path-client [--host H] [--port P] [--user U] [--password P]\n"
               "                                [--thread T] [--message TEXT]\n";
  std::exit(2);
}

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) usage(std::string(flag) + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--host") o.host = value;
    else if (flag == "--port") o.port = value;
    else if (flag == "--user") o.user = value;
    else if (flag == "--password") o.password = value;
    else if (flag == "--thread") o.thread = value;
    else if (flag == "--message") o.message = value;
    else usage("unknown option " + std::string(flag));
  }
  return o;
}

std::string login(net::io_context& io, const options& o) {
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  stream.connect(resolver.resolve(o.host, o.port));
  http::request<http::string_body> req{http::verb::post, "/login", 11};
  req.set(http::field::host, o.host);
  req.set(http::field::content_type, "application/json");
  req.body() = json::serialize(json::object{{"user", o.user}, {"password", o.password}});
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (res.result() != http::status::ok)
    throw std::runtime_error("login failed: HTTP " + std::to_string(res.result_int()) + " " + res.body());
  return std::string(json::parse(res.body()).as_object().at("token").as_string());
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse_args(argc, argv);
  try {
    net::io_context io;
    const std::string token = login(io, o);
    std::cout << "logged in as " << o.user << "\n";

    tcp::resolver resolver(io);
    websocket::stream<beast::tcp_stream> ws(io);
    beast::get_lowest_layer(ws).connect(resolver.resolve(o.host, o.port));
    ws.set_option(websocket::stream_base::decorator(
        [&token](websocket::request_type& req) { req.set(http::field::authorization, "Bearer " + token); }));
    ws.handshake(o.host + ":" + o.port, "/ws");
    std::cout << "connected; running an agent on thread " << o.thread << "\n";

    const auto start = std::chrono::steady_clock::now();
    ws.text(true);
    ws.write(net::buffer(json::serialize(json::object{{"type", "run_agent"}, {"thread_id", o.thread}, {"message", o.message}})));

    const std::vector<std::string> expected = {"agent_started", "agent_thinking", "tool_executing", "tool_completed",
                                               "agent_completed"};
    std::vector<std::string> seen;
    beast::flat_buffer buffer;
    while (seen.empty() || seen.back() != "agent_completed") {
      ws.read(buffer);
      const std::string text = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      const json::object event = json::parse(text).as_object();
      const std::string type(event.at("type").as_string());
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      std::printf("%+9.1f ms  %-16s %s\n", ms, type.c_str(), text.c_str());
      if (type == "error") return 1;
      seen.push_back(type);
    }
    ws.close(websocket::close_code::normal);
    const bool in_order = seen == expected;
    std::cout << (in_order ? "the five events arrived in order" : "unexpected event order") << "\n";
    return in_order ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "uniws-golden-path-client: " << e.what() << "\n";
    return 1;
  }
}
