// libFuzzer target: uniws's RFC 6455 reader against Boost.Beast's, differentially. Any bytes as
// what a client sends after the upgrade; the first byte picks the message limit and how the
// bytes are split for uniws's reader. Properties: both readers make the same of them (messages,
// control frames, how the stream ends, the close code a failure sends), whatever the split.
#include "../support/websocket_differential.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t message_max = 16 + 64 * (data[0] & 0x1F);  // 16..2000: reachable limits
  const std::size_t pieces[] = {std::size_t{1} + (data[0] >> 5), 1, 5};
  const std::span<const unsigned char> in(data + 1, size - 1);
  const uniws_test::observed ours = uniws_test::read_with_uniws(in, message_max);
  if (!uniws_test::same_reading(ours, uniws_test::read_with_beast(in, message_max))) __builtin_trap();
  if (uniws_test::read_with_uniws(in, message_max, pieces) != ours) __builtin_trap();
  return 0;
}
