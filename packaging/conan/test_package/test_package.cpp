// Conan's test package: uniws found through Conan, a manager streaming a run to one connection.
#include <uniws/uniws.hpp>

#include <cstdio>
#include <string>
#include <vector>

struct recording_connection {
  uniws::connection_id id() const noexcept { return 7; }
  uniws::send_result try_send(uniws::message m) {
    sent.emplace_back(m.text());
    return uniws::send_result::queued;
  }
  void close(uniws::close_code) {}
  std::vector<std::string> sent;
};

int main() {
  uniws::manager_factory<recording_connection> factory;
  auto mgr = factory.get_websocket_manager(uniws::basic_user_context("conan"));
  auto conn = std::make_shared<recording_connection>();
  if (!mgr->add_connection(conn)) return 1;
  if (!mgr->join_thread(conn->id(), "t")) return 1;
  std::move(mgr.start_run("t", "r")).complete("done");
  for (const auto& line : conn->sent) std::printf("%s\n", line.c_str());
  return conn->sent.size() == 3 ? 0 : 1;  // joined, agent_started, agent_completed
}
