// A tool call that is dropped would leave tool_executing without its tool_completed: the
// result of execute_tool() must be used ([[nodiscard]], an error under -Werror).
// expect-error: ignoring return value.*a tool call must end in tool_completed
#include <uniws/events.hpp>

#include <vector>

struct recording_sink {
  std::vector<uniws::agent_event>* events;
  void emit(uniws::agent_event e) { events->push_back(std::move(e)); }
};

int main() {
  std::vector<uniws::agent_event> events;
  uniws::agent_run<recording_sink> run(recording_sink{&events}, "t1", "r-1");
#ifdef UNIWS_COMPILE_FAIL
  std::move(run).execute_tool("search");
#else
  std::move(run).execute_tool("search").finish(uniws::json_text::null()).complete("done");
#endif
}
