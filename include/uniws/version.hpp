// uniws/version.hpp - the version; CMake's project(VERSION) is read from here.
#pragma once

#define UNIWS_VERSION_MAJOR 0
#define UNIWS_VERSION_MINOR 1
#define UNIWS_VERSION_PATCH 0
#define UNIWS_VERSION (UNIWS_VERSION_MAJOR * 10000 + UNIWS_VERSION_MINOR * 100 + UNIWS_VERSION_PATCH)

namespace uniws {
/// The library's version, as numbers.
struct version_info {
  int major;  ///< incompatible changes
  int minor;  ///< compatible additions
  int patch;  ///< fixes
};
inline constexpr version_info version{UNIWS_VERSION_MAJOR, UNIWS_VERSION_MINOR, UNIWS_VERSION_PATCH};
}  // namespace uniws
