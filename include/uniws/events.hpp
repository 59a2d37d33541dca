// uniws/events.hpp - the five agent events, their envelope, and agent_run: the typestate an
// agent holds while it works, which only lets it emit the events in their grammar
//     agent_started, agent_thinking*, (tool_executing, tool_completed)*, agent_completed
// and which still sends agent_completed (with an error) if the agent dies early.
#pragma once

#include <uniws/history.hpp>
#include <uniws/message.hpp>

#include <concepts>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace uniws {

enum class agent_event_type : std::uint8_t {
  agent_started,
  agent_thinking,
  tool_executing,
  tool_completed,
  agent_completed,
};

constexpr std::string_view to_string(agent_event_type t) noexcept {
  switch (t) {
    case agent_event_type::agent_started:
      return "agent_started";
    case agent_event_type::agent_thinking:
      return "agent_thinking";
    case agent_event_type::tool_executing:
      return "tool_executing";
    case agent_event_type::tool_completed:
      return "tool_completed";
    case agent_event_type::agent_completed:
      return "agent_completed";
  }
  return "unknown";
}

/// One event of one run on one of the user's threads. The manager adds the per-user seq.
struct agent_event {
  /// Which of the agent's events.
  agent_event_type type;
  /// The thread it belongs to.
  std::string thread_id;
  /// The run it belongs to.
  std::string run_id;
  /// Its payload (a JSON object).
  json_text payload = json_text::object();
};

/// The wire envelope:
/// {"type":T,"thread_id":TH,"run_id":R,"seq":N,"payload":P}
inline message encode_event(const agent_event& e, std::uint64_t seq) {
  std::string out;
  out.reserve(64 + e.thread_id.size() + e.run_id.size() + e.payload.str().size());
  out += "{\"type\":\"";
  out += to_string(e.type);
  out += "\",\"thread_id\":";
  detail::append_json_string(out, e.thread_id);
  out += ",\"run_id\":";
  detail::append_json_string(out, e.run_id);
  out += ",\"seq\":";
  out += std::to_string(seq);
  out += ",\"payload\":";
  out += e.payload.str();
  out.push_back('}');
  return message::copy_of(out, message::clock::now());
}

/// The answer to a join: {"type":"joined","thread_id":TH,"epoch":E,"seq":S}, and after a
/// resume also "recovered":true|false and (when true) "replayed":K.
inline message encode_joined(std::string_view thread_id, const join_result& r, bool resumed) {
  std::string out;
  out.reserve(112 + thread_id.size());
  out += "{\"type\":\"joined\",\"thread_id\":";
  detail::append_json_string(out, thread_id);
  out += ",\"epoch\":\"";
  out += r.epoch.to_string();
  out += "\",\"seq\":";
  out += std::to_string(r.seq);
  if (resumed) {
    out += r.status == join_status::recovered ? ",\"recovered\":true,\"replayed\":" : ",\"recovered\":false";
    if (r.status == join_status::recovered) out += std::to_string(r.replayed);
  }
  out.push_back('}');
  return message::copy_of(out);
}

/// The envelope `encoded` (made by encode_event) with its seq replaced. The first `,"seq":` is
/// the envelope's own: inside a JSON string a quote is always escaped, so `,"` cannot occur
/// there. Returns an empty message if `encoded` has no seq.
inline message restamp_event(const message& encoded, std::uint64_t seq) {
  const std::string_view text(encoded.data(), encoded.size());
  constexpr std::string_view key = ",\"seq\":";
  const auto at = text.find(key);
  if (at == std::string_view::npos) return message();
  const auto digits = at + key.size();
  const auto end = text.find_first_not_of("0123456789", digits);
  if (end == std::string_view::npos) return message();
  std::string out;
  out.reserve(text.size() + 20);
  out.append(text.substr(0, digits));
  out += std::to_string(seq);
  out.append(text.substr(end));
  return message::copy_of(out, encoded.emitted_at());
}

/// Where an agent_run sends its events: a manager reference, or any sink with emit().
template <class S>
concept event_sink = std::movable<S> && requires(S& s, agent_event e) { s.emit(std::move(e)); };

template <event_sink Sink>
class agent_tool_call;
template <event_sink Sink>
class agent_run_after_tools;

namespace detail {

/// What every state of a run shares: the sink, the ids, and the promise to end the run.
template <event_sink Sink>
class run_core {
 public:
  run_core(Sink sink, std::string thread_id, std::string run_id)
      : state_(std::in_place, std::move(sink), std::move(thread_id), std::move(run_id)) {}
  run_core(run_core&& other) noexcept : state_(std::exchange(other.state_, std::nullopt)) {}
  run_core& operator=(run_core&&) = delete;

  /// A run dropped before agent_completed still ends, so no client waits forever.
  ~run_core() {
    if (!state_) return;
    const bool unwinding = std::uncaught_exceptions() > 0;
    try {
      emit(agent_event_type::agent_completed,
           json_text::object(
               {{"status", json_text::string("error")},
                {"error", json_text::string(unwinding ? "the agent failed" : "the run ended early")}}));
    } catch (...) {  // a destructor must not throw; the sink's failure is its own to count
    }
  }

  void emit(agent_event_type type, json_text payload) {
    if (!state_)
      throw std::logic_error("uniws::agent_run: this run state was moved from; use the one it returned");
    state_->sink.emit(agent_event{type, state_->thread_id, state_->run_id, std::move(payload)});
  }

  void finish(json_text payload) {
    emit(agent_event_type::agent_completed, std::move(payload));
    state_.reset();
  }

  /// The run's thread.
  [[nodiscard]] const std::string& thread_id() const { return live().thread_id; }
  /// The run's id.
  [[nodiscard]] const std::string& run_id() const { return live().run_id; }

 private:
  struct state {
    state(Sink s, std::string t, std::string r)
        : sink(std::move(s)), thread_id(std::move(t)), run_id(std::move(r)) {}
    Sink sink;
    std::string thread_id;
    std::string run_id;
  };
  const state& live() const {
    if (!state_) throw std::logic_error("uniws::agent_run: this run state was moved from");
    return *state_;
  }
  std::optional<state> state_;
};

inline json_text completed_payload(std::string_view response) {
  return json_text::object({{"status", json_text::string("ok")}, {"response", json_text::string(response)}});
}
inline json_text failed_payload(std::string_view error) {
  return json_text::object({{"status", json_text::string("error")}, {"error", json_text::string(error)}});
}
inline json_text cancelled_payload(std::string_view reason) {
  return json_text::object(
      {{"status", json_text::string("cancelled")}, {"reason", json_text::string(reason)}});
}
inline json_text tool_payload(std::string_view tool, std::string_view key, json_text value) {
  return json_text::object({{"tool", json_text::string(tool)}, {key, std::move(value)}});
}

}  // namespace detail

/// A run that has started and has not called a tool yet: it may think, call a tool, or end.
/// Each step that changes what may come next consumes the run (call it on an rvalue) and
/// returns the next state, so an out-of-order event does not compile.
template <event_sink Sink>
class agent_run {
 public:
  /// Emits agent_started.
  agent_run(Sink sink, std::string thread_id, std::string run_id, json_text payload = json_text::object())
      : core_(std::move(sink), std::move(thread_id), std::move(run_id)) {
    core_.emit(agent_event_type::agent_started, std::move(payload));
  }

  /// agent_thinking (any number of times, before the first tool).
  void thinking(json_text payload) { core_.emit(agent_event_type::agent_thinking, std::move(payload)); }

  /// tool_executing: {"tool":TOOL,"args":ARGS}.
  [[nodiscard(
      "a tool call must end in tool_completed: keep it and call "
      "std::move(call).finish(result)")]] agent_tool_call<Sink>
  execute_tool(std::string tool, json_text args = json_text::object()) && {
    return agent_tool_call<Sink>(std::move(core_), std::move(tool), std::move(args));
  }

  /// agent_completed: {"status":"ok","response":RESPONSE}.
  void complete(std::string_view response) && { core_.finish(detail::completed_payload(response)); }
  /// agent_completed: {"status":"error","error":ERROR}.
  void fail(std::string_view error) && { core_.finish(detail::failed_payload(error)); }
  /// agent_completed: {"status":"cancelled","reason":REASON} (e.g. nobody is watching).
  void cancel(std::string_view reason) && { core_.finish(detail::cancelled_payload(reason)); }

  /// The run's thread.
  [[nodiscard]] const std::string& thread_id() const { return core_.thread_id(); }
  /// The run's id.
  [[nodiscard]] const std::string& run_id() const { return core_.run_id(); }

 private:
  detail::run_core<Sink> core_;
};

/// A tool is executing: the only next event is its tool_completed.
template <event_sink Sink>
class agent_tool_call {
 public:
  /// tool_completed: {"tool":TOOL,"result":RESULT}.
  [[nodiscard]] agent_run_after_tools<Sink> finish(json_text result) && {
    core_.emit(agent_event_type::tool_completed, detail::tool_payload(tool_, "result", std::move(result)));
    return agent_run_after_tools<Sink>(std::move(core_));
  }

  /// The tool this call runs.
  [[nodiscard]] const std::string& tool() const noexcept { return tool_; }

 private:
  friend class agent_run<Sink>;
  friend class agent_run_after_tools<Sink>;
  agent_tool_call(detail::run_core<Sink> core, std::string tool, json_text args)
      : core_(std::move(core)), tool_(std::move(tool)) {
    core_.emit(agent_event_type::tool_executing, detail::tool_payload(tool_, "args", std::move(args)));
  }
  detail::run_core<Sink> core_;
  std::string tool_;
};

/// At least one tool has completed: another tool, or the end (no more thinking).
template <event_sink Sink>
class agent_run_after_tools {
 public:
  /// Emits tool_executing; the call it returns emits tool_completed.
  [[nodiscard(
      "a tool call must end in tool_completed: keep it and call "
      "std::move(call).finish(result)")]] agent_tool_call<Sink>
  execute_tool(std::string tool, json_text args = json_text::object()) && {
    return agent_tool_call<Sink>(std::move(core_), std::move(tool), std::move(args));
  }
  /// Ends the run: agent_completed with `response`.
  void complete(std::string_view response) && { core_.finish(detail::completed_payload(response)); }
  /// Ends the run: agent_completed with status error and `error`.
  void fail(std::string_view error) && { core_.finish(detail::failed_payload(error)); }
  /// Ends the run: agent_completed with status cancelled and `reason`.
  void cancel(std::string_view reason) && { core_.finish(detail::cancelled_payload(reason)); }

 private:
  friend class agent_tool_call<Sink>;
  explicit agent_run_after_tools(detail::run_core<Sink> core) : core_(std::move(core)) {}
  detail::run_core<Sink> core_;
};

}  // namespace uniws
