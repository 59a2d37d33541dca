// A consumer of uniws: its own connection type, a factory, a coroutine that gets a manager.
#include <uniws/uniws.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

struct console_connection {
  uniws::connection_id id() const noexcept { return 1; }
  uniws::send_result try_send(uniws::message m) {
    lines.emplace_back(m.text());
    return uniws::send_result::queued;
  }
  void close(uniws::close_code) {}
  std::vector<std::string> lines;
};

uniws::task<int> session(uniws::manager_factory<console_connection>* factory,
                         std::shared_ptr<console_connection> c) {
  auto mgr = co_await factory->get_websocket_manager_async(uniws::basic_user_context("alice"));
  if (!mgr->add_connection(c)) co_return -1;
  if (!mgr->join_thread(c->id(), "t1")) co_return -1;  // answered with `joined`
  auto run = mgr.start_run("t1", "r-1");
  std::move(run).complete("hello from a consumer");
  co_return static_cast<int>(c->lines.size()) - 1;  // the events after the join's answer
}

int main() {
  uniws::manager_factory<console_connection> factory;
  auto c = std::make_shared<console_connection>();
  const int events = uniws::sync_wait(session(&factory, c));
  std::printf("uniws %d.%d.%d: %d events\n", uniws::version.major, uniws::version.minor, uniws::version.patch,
              events);
  for (const auto& line : c->lines) std::printf("  %s\n", line.c_str());
  return events == 2 ? 0 : 1;
}
