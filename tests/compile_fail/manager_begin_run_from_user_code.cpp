// A run is counted in flight by manager_ref::start_run, which hands the count to the run's
// lease: a user calling begin_run would count a run nothing ends. It is private; users start_run.
// expect-error: begin_run.*(is private|private member)
#include <uniws/factory.hpp>
#include <uniws/testing.hpp>

int main() {
  uniws::manager_factory<uniws::testing::memory_connection> factory;
  auto m = factory.get_websocket_manager(uniws::basic_user_context("u1"));
#ifdef UNIWS_COMPILE_FAIL
  m->begin_run(false);
#else
  auto run = m.start_run("t1", "r1");
#endif
  return static_cast<int>(m->runs_in_flight()) - 1;
}
