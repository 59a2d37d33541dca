// tests/support/stress_scale.hpp - how much to divide stress-test iterations by: sanitizers slow
// everything 5-20x, and the loops must still interleave threads, not time out.
#pragma once

namespace uniws_test {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr int stress_divisor = 4;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
inline constexpr int stress_divisor = 4;
#else
inline constexpr int stress_divisor = 1;
#endif
#else
inline constexpr int stress_divisor = 1;
#endif

}  // namespace uniws_test
