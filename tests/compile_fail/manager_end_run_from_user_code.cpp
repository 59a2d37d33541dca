// A run leaves the in-flight count when its lease ends, whichever way the run ends: a user
// calling end_run would uncount a run still going. It is private; a run ends by going out of scope.
// expect-error: end_run.*(is private|private member)
#include <uniws/factory.hpp>
#include <uniws/testing.hpp>

int main() {
  uniws::manager_factory<uniws::testing::memory_connection> factory;
  auto m = factory.get_websocket_manager(uniws::basic_user_context("u1"));
  {
    auto run = m.start_run("t1", "r1");
#ifdef UNIWS_COMPILE_FAIL
    m->end_run();
#endif
  }
  return static_cast<int>(m->runs_in_flight());
}
