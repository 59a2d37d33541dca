// agent_thinking after a tool has run is outside the event grammar: it does not compile.
// expect-error: no member named [^a-z_]+thinking[^a-z_]
#include <uniws/events.hpp>

#include <vector>

struct recording_sink {
  std::vector<uniws::agent_event>* events;
  void emit(uniws::agent_event e) { events->push_back(std::move(e)); }
};

int main() {
  std::vector<uniws::agent_event> events;
  uniws::agent_run<recording_sink> run(recording_sink{&events}, "t1", "r-1");
  auto after = std::move(run).execute_tool("search").finish(uniws::json_text::null());
#ifdef UNIWS_COMPILE_FAIL
  after.thinking(uniws::json_text::null());
#endif
  std::move(after).complete("done");
}
