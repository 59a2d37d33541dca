// uniws-load-baseline: the server a C++ user would otherwise write, modelled on the design of
// Boost.Beast's chat-multi example, speaking enough of docs/protocol.md (login, /ws with a
// token, join / ping / run_agent, the five events with a per-user seq) for uniws-load to drive
// it exactly as it drives uniws-golden-path.
//
// The design under test, as chat-multi has it:
//   - one global mutex-protected set of every session; no index by user, so each event scans
//     all sessions and filters by user and thread (with --index-by-user 1, what a competent
//     user adds first: the sessions of each user in a map, so an event visits only its user's);
//   - one std::shared_ptr<std::string const> per event, posted to each session's strand;
//   - a per-session std::vector queue with no bound, written one message at a time.
// Login, tokens, frame parsing and the demo agent's script are the example server's own
// (auth.hpp, protocol.hpp), so the two servers differ only in how events reach connections.
#include "../../examples/golden_path/protocol.hpp"
#include "peer_front.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

using namespace peer;

namespace {

class session;

// Everything shared: chat-multi's shared_state, plus the per-user seq the protocol needs.
class shared_state {
 public:
  void index_by_user() { indexed_ = true; }  // before the first session
  void join(session* s);
  void leave(session* s);
  void subscribe(session* s, std::string thread);

  // One event to every session of `user` joined to `thread`.
  void send(const std::string& user, const std::string& thread, const std::string& run_id,
            std::string_view type, json::object payload);

  std::size_t sessions() {
    std::lock_guard lock(mutex_);
    return sessions_.size();
  }

  std::atomic<std::uint64_t> messages_sent{0};

 private:
  bool indexed_ = false;
  std::mutex mutex_;
  std::unordered_set<session*> sessions_;
  std::unordered_map<std::string, std::unordered_set<session*>> by_user_;  // with indexed_ only
  std::unordered_map<std::string, std::int64_t> seq_;
};

class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket socket, std::string user, shared_state& state)
      : ws_(std::move(socket)), user_(std::move(user)), state_(state) {}

  websocket::stream<beast::tcp_stream>& ws() { return ws_; }
  const std::string& user() const { return user_; }
  std::set<std::string>& threads() { return threads_; }  // guarded by shared_state's mutex

  void send(const std::shared_ptr<const std::string>& message) {
    net::post(ws_.get_executor(), [self = shared_from_this(), message] { self->on_send(message); });
  }

 private:
  void on_send(std::shared_ptr<const std::string> message) {
    queue_.push_back(std::move(message));
    if (queue_.size() > 1) return;  // already writing
    write_front();
  }
  void write_front() {
    ws_.text(true);
    ws_.async_write(net::buffer(*queue_.front()),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
  }
  void on_write(beast::error_code ec) {
    if (ec) return;
    state_.messages_sent.fetch_add(1, std::memory_order_relaxed);
    queue_.erase(queue_.begin());
    if (!queue_.empty()) write_front();
  }

  websocket::stream<beast::tcp_stream> ws_;
  std::string user_;
  shared_state& state_;
  std::set<std::string> threads_;
  std::vector<std::shared_ptr<const std::string>> queue_;
};

void shared_state::join(session* s) {
  std::lock_guard lock(mutex_);
  sessions_.insert(s);
  if (indexed_) by_user_[s->user()].insert(s);
}

void shared_state::leave(session* s) {
  std::lock_guard lock(mutex_);
  sessions_.erase(s);
  if (!indexed_) return;
  auto it = by_user_.find(s->user());
  if (it != by_user_.end() && it->second.erase(s) && it->second.empty()) by_user_.erase(it);
}

void shared_state::subscribe(session* s, std::string thread) {
  std::lock_guard lock(mutex_);
  s->threads().insert(std::move(thread));
}

void shared_state::send(const std::string& user, const std::string& thread, const std::string& run_id,
                        std::string_view type, json::object payload) {
  std::vector<std::weak_ptr<session>> targets;
  std::shared_ptr<const std::string> message;
  {
    std::lock_guard lock(mutex_);
    const std::int64_t seq = ++seq_[user];
    message =
        std::make_shared<const std::string>(json::serialize(json::object{{"type", type},
                                                                         {"thread_id", thread},
                                                                         {"run_id", run_id},
                                                                         {"seq", seq},
                                                                         {"payload", std::move(payload)}}));
    if (indexed_) {
      if (auto it = by_user_.find(user); it != by_user_.end())
        for (session* s : it->second)
          if (s->threads().count(thread)) targets.push_back(s->weak_from_this());
    } else {
      for (session* s : sessions_)
        if (s->user() == user && s->threads().count(thread)) targets.push_back(s->weak_from_this());
    }
  }
  for (const auto& weak : targets)
    if (auto s = weak.lock()) s->send(message);
}

struct server {
  front login;
  shared_state state;
  std::chrono::milliseconds agent_delay{50};
  std::atomic<std::uint64_t> next_run{1};
};

net::awaitable<void> pause(std::chrono::milliseconds d) {
  if (d.count() == 0) co_return;
  net::steady_timer timer(co_await net::this_coro::executor, d);
  co_await timer.async_wait(net::use_awaitable);
}

// The example server's demo agent, event for event.
net::awaitable<void> agent(server& s, std::string user, std::string thread, std::string run_id,
                           std::string text, int steps, std::size_t pad) {
  s.state.send(user, thread, run_id, "agent_started", json::object{{"message", text}});
  for (int i = 1; i <= steps; ++i) {
    co_await pause(s.agent_delay);
    s.state.send(
        user, thread, run_id, "agent_thinking",
        json::object{{"step", i}, {"text", "thinking about: " + text}, {"pad", std::string(pad, '.')}});
  }
  co_await pause(s.agent_delay);
  s.state.send(user, thread, run_id, "tool_executing",
               json::object{{"tool", "echo"}, {"args", json::object{{"input", text}}}});
  co_await pause(s.agent_delay);
  s.state.send(user, thread, run_id, "tool_completed", json::object{{"tool", "echo"}, {"result", text}});
  co_await pause(s.agent_delay);
  s.state.send(user, thread, run_id, "agent_completed",
               json::object{{"status", "ok"}, {"response", "You said: " + text}});
}

void reply(session& c, std::string text) { c.send(std::make_shared<const std::string>(std::move(text))); }

net::awaitable<void> websocket_session(server& s, std::shared_ptr<session> c,
                                       http::request<http::string_body> req) {
  auto [ec] = co_await c->ws().async_accept(req, net::as_tuple(net::use_awaitable));
  if (ec) co_return;
  s.state.join(c.get());
  beast::flat_buffer buffer;
  for (;;) {
    auto [rec, n] = co_await c->ws().async_read(buffer, net::as_tuple(net::use_awaitable));
    if (rec) break;
    const std::string_view text(static_cast<const char*>(buffer.data().data()), buffer.size());
    const auto frame = golden_path::parse_client_frame(text, {});
    if (const auto* e = std::get_if<golden_path::frame_error>(&frame)) {
      reply(*c, json::serialize(json::object{{"type", "error"}, {"code", e->code}, {"message", e->message}}));
    } else if (std::holds_alternative<golden_path::ping_frame>(frame)) {
      reply(*c, R"({"type":"pong"})");
    } else if (const auto* j = std::get_if<golden_path::join_frame>(&frame)) {
      s.state.subscribe(c.get(), j->thread_id);
    } else if (const auto* r = std::get_if<golden_path::run_agent_frame>(&frame)) {
      s.state.subscribe(c.get(), r->thread_id);
      net::co_spawn(c->ws().get_executor(),
                    agent(s, c->user(), r->thread_id, "r-" + std::to_string(s.next_run.fetch_add(1)),
                          r->message, r->steps, r->pad),
                    net::detached);
    }
    buffer.consume(buffer.size());
  }
  s.state.leave(c.get());
}

}  // namespace

int main(int argc, char** argv) try {
  const options o = parse_options(argc, argv);
  auto s = std::make_unique<server>();
  s->agent_delay = o.agent_delay;
  if (o.index_by_user) s->state.index_by_user();
  s->login.users = o.users_file.empty() ? golden_path::user_directory::demo()
                                        : golden_path::user_directory::from_file(o.users_file);
  return serve(o, [&s](tcp::socket socket) {
    return http_session(
        s->login, std::move(socket),
        [&s](tcp::socket upgraded, std::string user, http::request<http::string_body> req) {
          return websocket_session(
              *s, std::make_shared<session>(std::move(upgraded), std::move(user), s->state), std::move(req));
        },
        [&s] {
          return json::serialize(json::object{{"connections", s->state.sessions()},
                                              {"messages_sent", s->state.messages_sent.load()}});
        });
  });
} catch (const std::exception& e) {
  std::cerr << "uniws-load-baseline: " << e.what() << "\n";
  return 2;
}
