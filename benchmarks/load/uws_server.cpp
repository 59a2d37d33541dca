// uniws-load-uws: the end-to-end workload on uWebSockets (uNetworking/uWebSockets + uSockets),
// the server C++ users know as the fastest, written as its users write it: one loop, a topic per
// user and thread, ws->subscribe() on join and app.publish() per event. It speaks the part of
// docs/protocol.md that uniws-load drives, as node_server.js does: POST /login (the example's
// HS256 JWTs, as every C++ peer), /ws with the token as a Bearer header or ?token=, join, leave,
// ping and run_agent with steps and pad, the five events with a per-user seq, joined answers.
//
// Each run's pauses are a uSockets timer of its own (as setTimeout per run in Node); with
// --agent-delay-ms 0 the next event is deferred to the loop's next pass (a yield between two
// events, as the other peers' agents do), or, with --agent-burst 1, emitted at once: the whole
// run in one pass, which uWebSockets corks into one send per connection. uWebSockets' own defaults otherwise
// (no compression, 64 KiB back-pressure, 120 s idle timeout); frames from clients up to 64 KiB. No history,
// no limits, no metrics: what it lacks, uniws pays for. A benchmark peer, not a server to copy.
//
// Built only when UNIWS_UWEBSOCKETS_DIR names the sources (benchmarks/CMakeLists.txt).
#include "../../examples/golden_path/protocol.hpp"
#include "peer_front.hpp"

#include <App.h>

#include <iostream>
#include <memory>
#include <string>
#include <unordered_map>

namespace {

struct socket_data {
  std::string user;
};

using app_type = uWS::App;
using websocket = uWS::WebSocket<false, true, socket_data>;

struct server {
  peer::front login;
  std::chrono::milliseconds agent_delay{0};
  bool agent_burst = false;
  std::unordered_map<std::string, std::int64_t> seq;  ///< per user
  std::uint64_t next_run = 1;
  std::string epoch = "00000000000000000000000000000000";
  app_type* app = nullptr;
};
server* the_server = nullptr;  // the timers' C callbacks reach it through here

std::string topic_of(std::string_view user, std::string_view thread) {
  std::string t;
  t.reserve(user.size() + 1 + thread.size());
  t.append(user).push_back('\x1f');  // a byte neither a user name nor a thread id holds
  t.append(thread);
  return t;
}

std::string json_string(std::string_view s) { return boost::json::serialize(boost::json::string(s)); }

struct agent_run {
  std::string user, topic, thread_json, run_id_json;
  std::string message, thinking, response;  ///< JSON strings, escaped once per run
  int steps = 0, step = 0;
  std::string pad;
  us_timer_t* timer = nullptr;

  // The event of this step, published once to every connection subscribed to the thread.
  // Returns false after the last one.
  bool emit_next() {
    server& s = *the_server;
    std::string payload;
    const bool last = step == steps + 3;
    if (step == 0)
      payload = R"({"message":)" + message + "}";
    else if (step <= steps)
      payload = R"({"step":)" + std::to_string(step) + R"(,"text":)" + thinking + R"(,"pad":")" + pad + "\"}";
    else if (step == steps + 1)
      payload = R"({"tool":"echo","args":{"input":)" + message + "}}";
    else if (step == steps + 2)
      payload = R"({"tool":"echo","result":)" + message + "}";
    else
      payload = R"({"status":"ok","response":)" + response + "}";
    const char* type = step == 0           ? "agent_started"
                       : step <= steps     ? "agent_thinking"
                       : step == steps + 1 ? "tool_executing"
                       : step == steps + 2 ? "tool_completed"
                                           : "agent_completed";
    std::string text;
    text.reserve(80 + thread_json.size() + run_id_json.size() + payload.size());
    text.append(R"({"type":")").append(type).append(R"(","thread_id":)").append(thread_json);
    text.append(R"(,"run_id":)")
        .append(run_id_json)
        .append(R"(,"seq":)")
        .append(std::to_string(++s.seq[user]));
    text.append(R"(,"payload":)").append(payload).push_back('}');
    s.app->publish(topic, text, uWS::OpCode::TEXT);
    ++step;
    return !last;
  }
};

void advance(agent_run* run);

void on_timer(us_timer_t* t) { advance(*static_cast<agent_run**>(us_timer_ext(t))); }

// Emits the run's next event, then waits its pause (or ends it).
void advance(agent_run* run) {
  const bool burst = the_server->agent_burst && the_server->agent_delay.count() == 0;
  bool more = run->emit_next();
  while (more && burst) more = run->emit_next();
  if (!more) {
    if (run->timer) us_timer_close(run->timer);
    delete run;
    return;
  }
  const auto delay = static_cast<int>(the_server->agent_delay.count());
  if (delay == 0) {
    uWS::Loop::get()->defer([run] { advance(run); });
  } else if (!run->timer) {
    run->timer = us_create_timer(reinterpret_cast<us_loop_t*>(uWS::Loop::get()), 0, sizeof(agent_run*));
    *static_cast<agent_run**>(us_timer_ext(run->timer)) = run;
    us_timer_set(run->timer, on_timer, delay, delay);
  }
}

void join(server& s, websocket* ws, const std::string& thread) {
  const std::string& user = ws->getUserData()->user;
  ws->subscribe(topic_of(user, thread));
  ws->send(R"({"type":"joined","thread_id":)" + json_string(thread) + R"(,"epoch":")" + s.epoch +
               R"(","seq":)" + std::to_string(s.seq[user]) + "}",
           uWS::OpCode::TEXT);
}

void on_message(server& s, websocket* ws, std::string_view text) {
  const auto frame = golden_path::parse_client_frame(text, {});
  if (const auto* e = std::get_if<golden_path::frame_error>(&frame)) {
    ws->send(R"({"type":"error","code":)" + json_string(e->code) + "}", uWS::OpCode::TEXT);
  } else if (std::holds_alternative<golden_path::ping_frame>(frame)) {
    ws->send(R"({"type":"pong"})", uWS::OpCode::TEXT);
  } else if (const auto* j = std::get_if<golden_path::join_frame>(&frame)) {
    join(s, ws, j->thread_id);
  } else if (const auto* l = std::get_if<golden_path::leave_frame>(&frame)) {
    ws->unsubscribe(topic_of(ws->getUserData()->user, l->thread_id));
  } else if (const auto* r = std::get_if<golden_path::run_agent_frame>(&frame)) {
    if (!ws->isSubscribed(topic_of(ws->getUserData()->user, r->thread_id))) join(s, ws, r->thread_id);
    auto* run = new agent_run;
    run->user = ws->getUserData()->user;
    run->topic = topic_of(run->user, r->thread_id);
    run->thread_json = json_string(r->thread_id);
    run->run_id_json = "\"r-" + std::to_string(s.next_run++) + "\"";
    run->message = json_string(r->message);
    run->thinking = json_string("thinking about: " + r->message);
    run->response = json_string("You said: " + r->message);
    run->steps = r->steps;
    run->pad.assign(r->pad, '.');
    advance(run);
  }
}

}  // namespace

int main(int argc, char** argv) try {
  const peer::options o = peer::parse_options(argc, argv);
  if (o.threads != 1) throw std::invalid_argument("uWebSockets runs on one loop here (--threads 1)");
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  auto s = std::make_unique<server>();
  the_server = s.get();
  s->agent_delay = o.agent_delay;
  s->agent_burst = o.agent_burst;
  s->login.users = o.users_file.empty() ? golden_path::user_directory::demo()
                                        : golden_path::user_directory::from_file(o.users_file);
  app_type app;
  s->app = &app;
  app.get("/health", [](auto* res, auto*) { res->end(R"({"status":"ok"})"); });
  app.post("/login", [&s](auto* res, auto*) {
    res->onAborted([] {});
    res->onData([res, &s, body = std::string()](std::string_view chunk, bool last) mutable {
      body.append(chunk);
      if (!last) return;
      const auto login = golden_path::parse_login(body);
      res->writeHeader("Content-Type", "application/json");
      if (login && s->login.users.check(login->user, login->password))
        res->end(R"({"token":)" + json_string(s->login.tokens.issue(login->user)) + R"(,"user":)" +
                 json_string(login->user) + "}");
      else
        res->writeStatus("401 Unauthorized")->end(R"({"error":{"code":"invalid_credentials"}})");
    });
  });
  app.ws<socket_data>(
      "/ws",
      {.compression = uWS::DISABLED,
       .maxPayloadLength = 64 * 1024,
       .upgrade =
           [&s](auto* res, auto* req, auto* context) {
             const std::string_view auth = req->getHeader("authorization");
             const std::string_view token =
                 auth.substr(0, 7) == "Bearer " ? auth.substr(7) : req->getQuery("token");
             auto verified = s->login.tokens.verify(token);
             auto* v = std::get_if<golden_path::jwt::verified>(&verified);
             if (!v) {
               res->writeStatus("401 Unauthorized")->end();
               return;
             }
             res->template upgrade<socket_data>({std::move(v->subject)}, req->getHeader("sec-websocket-key"),
                                                req->getHeader("sec-websocket-protocol"),
                                                req->getHeader("sec-websocket-extensions"), context);
           },
       .message = [&s](websocket* ws, std::string_view text, uWS::OpCode) { on_message(*s, ws, text); }});
  bool listening = false;
  app.listen(o.address, o.port, [&](us_listen_socket_t* listener) {
    if (!listener) return;
    listening = true;
    std::cout << "listening on http://" << o.address << ":"
              << us_socket_local_port(0, reinterpret_cast<us_socket_t*>(listener)) << std::endl;
  });
  if (!listening) throw std::runtime_error("cannot listen on " + o.address + ":" + std::to_string(o.port));
  app.run();
  return 0;
} catch (const std::exception& e) {
  std::cerr << "uniws-load-uws: " << e.what() << "\n";
  return 2;
}
