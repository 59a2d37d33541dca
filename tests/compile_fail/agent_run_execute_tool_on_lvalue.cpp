// execute_tool() moves the run into its tool call: called on an lvalue it does not compile,
// so the old state cannot emit after the tool started.
// expect-error: (discards qualifiers|is an lvalue, but function has rvalue ref-qualifier)
// expect-error: (agent_run<Sink>::execute_tool[(].*[)] &&|member function .execute_tool. is an lvalue)
// typo: run (the name the lvalue is called on)
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
  auto call = run.execute_tool("search");
  std::move(call).finish(uniws::json_text::null()).complete("done");
#else
  auto call = std::move(run).execute_tool("search");
  std::move(call).finish(uniws::json_text::null()).complete("done");
#endif
}
