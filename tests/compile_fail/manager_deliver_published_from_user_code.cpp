// Only the factory hands a manager what the cluster's broker delivered: a user calling
// deliver_published would inject an event past the seq order. It is private; users emit.
// expect-error: deliver_published.*(is private|private member)
#include <uniws/manager.hpp>
#include <uniws/testing.hpp>

int main() {
  uniws::unified_manager<uniws::testing::memory_connection> m;
#ifdef UNIWS_COMPILE_FAIL
  m.deliver_published("t1", 1, uniws::message::copy_of("{}"));
#else
  m.emit(uniws::agent_event{uniws::agent_event_type::agent_thinking, "t1", "r1"});
#endif
}
