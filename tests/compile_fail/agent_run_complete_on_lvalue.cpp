// complete() ends a run: it is called on an rvalue (std::move(run).complete(...)), so a run
// cannot be completed and then used again.
// expect-error: (discards qualifiers|is an lvalue, but function has rvalue ref-qualifier)
// expect-error: (agent_run<Sink>::complete[(]std::string_view[)] &&|member function .complete. is an lvalue)
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
  run.complete("done");
#else
  std::move(run).complete("done");
#endif
}
