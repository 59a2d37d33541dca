// uniws-golden-path-client: walks the golden path against a uniws-golden-path server.
// Logs in, opens a WebSocket with the token, runs an agent, and prints each event with its
// arrival time until agent_completed. When the connection drops it reconnects and resumes
// from the last event it printed (docs/protocol.md §R), so the run still completes on screen;
// --drop-after N drops it on purpose after N events to show that. Exit status 0 when the
// run's five events arrived in order, each once.
#include "client.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct options {
  std::string host = "127.0.0.1";
  unsigned short port = 8080;
  std::string user = "alice";
  std::string password = "alice-pw";
  std::string thread = "t1";
  std::string message = "hello, agent";
  int drop_after = 0;  // 0: never drop on purpose
};

// What is wrong with the command line: main prints it with the usage and exits 2.
struct usage_error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) throw usage_error(std::string(flag) + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--host")
      o.host = value;
    else if (flag == "--port")
      o.port = static_cast<unsigned short>(std::stoul(value));
    else if (flag == "--user")
      o.user = value;
    else if (flag == "--password")
      o.password = value;
    else if (flag == "--thread")
      o.thread = value;
    else if (flag == "--message")
      o.message = value;
    else if (flag == "--drop-after")
      o.drop_after = std::stoi(value);
    else
      throw usage_error("unknown option " + std::string(flag));
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  namespace client = uniws_client::sync;
  namespace json = boost::json;
  options o;
  try {
    o = parse_args(argc, argv);
  } catch (const std::exception& e) {  // usage_error, or std::stoi's on a bad number
    std::cerr << "uniws-golden-path-client: " << e.what() << "\n"
              << "usage: uniws-golden-path-client [--host H] [--port P] [--user U] [--password P]\n"
                 "                                [--thread T] [--message TEXT] [--drop-after N]\n";
    return 2;
  }
  try {
    const client::server_address server(o.host, o.port);
    const std::string token = client::login(server, o.user, o.password);
    std::cout << "logged in as " << o.user << "\n";

    client::ws_client ws(server, token);
    std::cout << "connected; running an agent on thread " << o.thread << "\n";
    const auto start = std::chrono::steady_clock::now();
    ws.send(json::object{{"type", "run_agent"}, {"thread_id", o.thread}, {"message", o.message}});

    const std::vector<std::string> expected = {"agent_started", "agent_thinking", "tool_executing",
                                               "tool_completed", "agent_completed"};
    std::vector<std::string> seen;
    int reconnects = 0;
    std::size_t joined_seen = 0;
    while (seen.empty() || seen.back() != "agent_completed") {
      if (o.drop_after > 0 && seen.size() == static_cast<std::size_t>(o.drop_after) && reconnects == 0) {
        std::cout << "dropping the connection on purpose (--drop-after " << o.drop_after << ")\n";
        ws.lowest().socket().close();
      }
      const std::optional<json::object> event = ws.read(std::chrono::seconds(30));
      if (!event) {
        if (++reconnects > 5) throw std::runtime_error("the connection ended before agent_completed");
        std::this_thread::sleep_for(std::chrono::milliseconds(100) * reconnects);
        std::cout << "connection lost; reconnecting to resume after seq "
                  << ws.threads().at(o.thread).last_seq << "\n";
        ws.reconnect();
        continue;
      }
      for (; joined_seen < ws.joined_frames().size(); ++joined_seen) {
        const json::object& j = ws.joined_frames()[joined_seen];
        if (const auto* recovered = j.if_contains("recovered"))
          std::cout << (recovered->as_bool()
                            ? "resumed: " + json::serialize(j.at("replayed")) + " missed events replayed"
                            : std::string("not recovered: the history no longer holds the missed events"))
                    << "\n";
      }
      const std::string type(event->at("type").as_string());
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      std::printf("%+9.1f ms  %-16s %s\n", ms, type.c_str(), json::serialize(*event).c_str());
      if (type == "error") return 1;
      seen.push_back(type);
    }
    ws.close();
    const bool in_order = seen == expected;
    std::cout << (in_order ? "the five events arrived in order" : "unexpected event order") << "\n";
    return in_order ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "uniws-golden-path-client: " << e.what() << "\n";
    return 1;
  }
}
