// uniws-load-floor: the end-to-end benchmark's physical reference. The same workload as the other
// servers (docs/protocol.md's login, /ws, join, ping and run_agent, the demo agent's events with
// a per-user seq, one event at a time with a yield between two, as the example's agent does),
// served with the least work that can deliver it:
//   - each event's frame (WebSocket header and JSON text) is built once, by appending strings:
//     no JSON library, no message object, no reference count;
//   - it is appended to a byte buffer of each of the user's joined connections, found through a
//     per-user list; a connection writes all it has pending in one system call, and whatever
//     arrives while that write is out in the next one. While such a backlog lasts the socket is
//     corked (TCP_CORK), and uncorked when a write leaves nothing behind: the segments the
//     example server's adapter (uniws/beast/connection.hpp) sends for the same backlog;
//   - one thread, no lock, no strand, no queue bound, no metrics, no history, no timers but the
//     agent's own delay.
// Its server CPU per delivery is what a delivery costs this machine's kernel and Asio's reactor:
// what run_e2e.py puts every server's figure against. It is a benchmark fixture, not a server
// to copy: a client that stops reading makes it hold memory without bound, and only the load
// tool's messages are sent back unescaped (a message needing JSON escapes is refused).
//
// Reads (the handshake and the client's masked frames) go through Beast's WebSocket stream;
// writes go straight to the socket. Beast writes on its own only to answer a ping or a close,
// which uniws-load does not send.
#include "../../examples/golden_path/protocol.hpp"
#include "peer_front.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

using namespace peer;

namespace {

class floor_connection;

struct floor_state {
  front login;
  std::chrono::milliseconds agent_delay{0};
  bool agent_burst = false;  // with agent_delay 0: a run emitted without yielding
  std::unordered_map<std::string, std::vector<floor_connection*>> by_user;
  std::unordered_map<std::string, std::int64_t> seq;
  std::uint64_t next_run = 1, connections = 0, frames_sent = 0;
};

// RFC 6455 §5.2: a server's frame is FIN + text opcode, the length in 7, 7+16 or 7+64 bits, and
// the payload unmasked.
void append_frame(std::string& out, std::string_view payload) {
  const std::size_t n = payload.size();
  out.push_back(static_cast<char>(0x81));
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n < 65536) {
    out.push_back(126);
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(127);
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
  }
  out.append(payload);
}

class floor_connection : public std::enable_shared_from_this<floor_connection> {
 public:
  floor_connection(tcp::socket socket, std::string user) : ws_(std::move(socket)), user_(std::move(user)) {}

  websocket::stream<tcp::socket>& ws() { return ws_; }
  const std::string& user() const { return user_; }
  bool joined(std::string_view thread) const {
    for (const auto& t : threads_)
      if (t == thread) return true;
    return false;
  }
  void join(std::string thread) {
    if (!joined(thread)) threads_.push_back(std::move(thread));
  }

  /// Appends one framed event; the write goes out after the handler that appended returns, with
  /// everything else appended by then.
  void send(std::string_view frame) {
    pending_.append(frame);
    if (writing_ || flush_posted_) return;
    flush_posted_ = true;
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      self->flush_posted_ = false;
      self->write(false);
    });
  }

  void closed() { closed_ = true; }

 private:
  // `after_write`: called as the previous write completed; what is pending then is a backlog.
  void write(bool after_write) {
    if (closed_) return;
    if (pending_.empty()) {
      cork(false);
      return;
    }
    if (after_write) cork(true);
    writing_ = true;
    writing_buffer_.swap(pending_);
    net::async_write(ws_.next_layer(), net::buffer(writing_buffer_),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->writing_ = false;
                       self->writing_buffer_.clear();
                       if (ec)
                         self->closed_ = true;
                       else
                         self->write(true);
                     });
  }

  void cork(bool on) {
    if (on == corked_) return;
    corked_ = on;
    const int value = on ? 1 : 0;
    ::setsockopt(ws_.next_layer().native_handle(), IPPROTO_TCP, TCP_CORK, &value, sizeof value);
  }

  websocket::stream<tcp::socket> ws_;
  std::string user_;
  std::vector<std::string> threads_;
  std::string pending_, writing_buffer_;
  bool writing_ = false, flush_posted_ = false, closed_ = false, corked_ = false;
};

// The frame of one event, built once for all the user's connections.
void emit(floor_state& s, const std::string& user, const std::string& thread, const std::string& run_id,
          std::string_view type, std::string_view payload_json) {
  std::string text;
  text.reserve(96 + thread.size() + run_id.size() + payload_json.size());
  text.append(R"({"type":")").append(type).append(R"(","thread_id":")").append(thread);
  text.append(R"(","run_id":")").append(run_id).append(R"(","seq":)").append(std::to_string(++s.seq[user]));
  text.append(R"(,"payload":)").append(payload_json).push_back('}');
  std::string frame;
  frame.reserve(text.size() + 10);
  append_frame(frame, text);
  const auto it = s.by_user.find(user);
  if (it == s.by_user.end()) return;
  for (floor_connection* c : it->second)
    if (c->joined(thread)) {
      c->send(frame);
      ++s.frames_sent;
    }
}

// The demo agent's script, one event per step, a post (delay 0) or a timer between two.
struct agent_run : std::enable_shared_from_this<agent_run> {
  floor_state& s;
  net::any_io_executor executor;
  std::string user, thread, run_id, text;
  int steps;
  std::string pad;
  int step = 0;
  std::unique_ptr<net::steady_timer> timer;

  agent_run(floor_state& state, net::any_io_executor ex, std::string u, std::string t, std::string r,
            std::string m, int n, std::size_t pad_bytes)
      : s(state),
        executor(std::move(ex)),
        user(std::move(u)),
        thread(std::move(t)),
        run_id(std::move(r)),
        text(std::move(m)),
        steps(n),
        pad(pad_bytes, '.') {}

  void next() {
    if (step == 0) {
      emit(s, user, thread, run_id, "agent_started", R"({"message":")" + text + "\"}");
    } else if (step <= steps) {
      emit(s, user, thread, run_id, "agent_thinking",
           R"({"step":)" + std::to_string(step) + R"(,"text":"thinking about: )" + text + R"(","pad":")" +
               pad + "\"}");
    } else if (step == steps + 1) {
      emit(s, user, thread, run_id, "tool_executing", R"({"tool":"echo","args":{"input":")" + text + "\"}}");
    } else if (step == steps + 2) {
      emit(s, user, thread, run_id, "tool_completed", R"({"tool":"echo","result":")" + text + "\"}");
    } else {
      emit(s, user, thread, run_id, "agent_completed",
           R"({"status":"ok","response":"You said: )" + text + "\"}");
      return;
    }
    ++step;
    if (s.agent_delay.count() == 0 && s.agent_burst) return next();
    if (s.agent_delay.count() == 0) {
      net::post(executor, [self = shared_from_this()] { self->next(); });
      return;
    }
    if (!timer) timer = std::make_unique<net::steady_timer>(executor);
    timer->expires_after(s.agent_delay);
    timer->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->next();
    });
  }
};

bool needs_escaping(std::string_view text) {
  for (const char ch : text)
    if (ch == '"' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20) return true;
  return false;
}

void reply(floor_connection& c, std::string_view text) {
  std::string frame;
  append_frame(frame, text);
  c.send(frame);
}

net::awaitable<void> websocket_session(floor_state& s, std::shared_ptr<floor_connection> c,
                                       http::request<http::string_body> req) {
  auto [ec] = co_await c->ws().async_accept(req, net::as_tuple(net::use_awaitable));
  if (ec) co_return;
  auto& mine = s.by_user[c->user()];
  mine.push_back(c.get());
  ++s.connections;
  beast::flat_buffer buffer;
  for (;;) {
    auto [rec, n] = co_await c->ws().async_read(buffer, net::as_tuple(net::use_awaitable));
    if (rec) break;
    const std::string_view text(static_cast<const char*>(buffer.data().data()), buffer.size());
    const auto frame = golden_path::parse_client_frame(text, {});
    if (const auto* e = std::get_if<golden_path::frame_error>(&frame)) {
      reply(*c, R"({"type":"error","code":")" + e->code + R"("})");
    } else if (std::holds_alternative<golden_path::ping_frame>(frame)) {
      reply(*c, R"({"type":"pong"})");
    } else if (const auto* j = std::get_if<golden_path::join_frame>(&frame)) {
      c->join(j->thread_id);
    } else if (const auto* r = std::get_if<golden_path::run_agent_frame>(&frame)) {
      if (needs_escaping(r->message) || needs_escaping(r->thread_id)) {
        reply(*c, R"({"type":"error","code":"unsupported_by_the_floor"})");
      } else {
        c->join(r->thread_id);
        auto run =
            std::make_shared<agent_run>(s, c->ws().get_executor(), c->user(), r->thread_id,
                                        "r-" + std::to_string(s.next_run++), r->message, r->steps, r->pad);
        run->next();
      }
    }
    buffer.consume(buffer.size());
  }
  c->closed();
  auto& list = s.by_user[c->user()];
  std::erase(list, c.get());
  --s.connections;
}

}  // namespace

int main(int argc, char** argv) try {
  options o = parse_options(argc, argv);
  if (o.threads != 1) throw std::invalid_argument("the floor runs on one thread (--threads 1)");
  auto s = std::make_unique<floor_state>();
  s->agent_delay = o.agent_delay;
  s->agent_burst = o.agent_burst;
  s->login.users = o.users_file.empty() ? golden_path::user_directory::demo()
                                        : golden_path::user_directory::from_file(o.users_file);
  return serve(o, [&s](tcp::socket socket) {
    return http_session(
        s->login, std::move(socket),
        [&s](tcp::socket upgraded, std::string user, http::request<http::string_body> req) {
          return websocket_session(
              *s, std::make_shared<floor_connection>(std::move(upgraded), std::move(user)), std::move(req));
        },
        [&s] {
          return json::serialize(
              json::object{{"connections", s->connections}, {"messages_sent", s->frames_sent}});
        });
  });
} catch (const std::exception& e) {
  std::cerr << "uniws-load-floor: " << e.what() << "\n";
  return 2;
}
