// The registry hashes keys again while it migrates, where a throw would lose entries: a hash
// that may throw is refused at the type, with the reason.
// expect-error: static assertion failed.*the hash must be noexcept
// typo: none (a typo anywhere in this hash still leaves a hash that is not noexcept: the same error)
#include <uniws/registry.hpp>

#include <cstdint>

struct user_id_hash {
#ifdef UNIWS_COMPILE_FAIL
  std::uint64_t operator()(std::uint64_t id) const { return id * 0x9E3779B97F4A7C15ull; }
#else
  std::uint64_t operator()(std::uint64_t id) const noexcept { return id * 0x9E3779B97F4A7C15ull; }
#endif
};

int main() {
  uniws::user_registry<std::uint64_t, int, user_id_hash> registry;
  auto h = registry.get_or_create(std::uint64_t{7}, [] { return 1; });
  static_cast<void>(h);
}
