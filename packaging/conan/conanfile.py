# Conan 2 recipe for uniws (header-only). From the repository root:
#   conan create packaging/conan -s compiler.cppstd=20
# (`conan profile detect` picks gnu17 for g++ 12; uniws needs C++20, and says so in validate()).
import os
import re

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load


class UniwsConan(ConanFile):
    name = "uniws"
    description = "Header-only C++20 coroutine toolkit for per-user WebSocket event streaming"
    license = "MIT"
    url = "https://github.com/uniws/uniws"
    topics = ("websocket", "coroutines", "header-only", "lock-free")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True

    def _root(self):
        return os.path.join(self.recipe_folder, "..", "..")

    def set_version(self):
        # One source of truth: include/uniws/version.hpp (as CMakeLists.txt reads it).
        text = load(self, os.path.join(self._root(), "include", "uniws", "version.hpp"))
        parts = [re.search(rf"#define UNIWS_VERSION_{p} (\d+)", text).group(1) for p in ("MAJOR", "MINOR", "PATCH")]
        self.version = ".".join(parts)

    def export_sources(self):
        for pattern in ("CMakeLists.txt", "LICENSE", "cmake/*", "include/*"):
            copy(self, pattern, src=self._root(), dst=self.export_sources_folder)

    def layout(self):
        cmake_layout(self)

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def generate(self):
        toolchain = CMakeToolchain(self)
        toolchain.user_presets_path = False  # no CMakeUserPresets.json left in a source tree
        toolchain.generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure(variables={"UNIWS_BUILD_TESTS": "OFF", "UNIWS_BUILD_EXAMPLES": "OFF",
                                   "UNIWS_BUILD_BENCHMARKS": "OFF"})

    def package(self):
        CMake(self).install()
        copy(self, "LICENSE", src=self.source_folder, dst=os.path.join(self.package_folder, "licenses"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "uniws")
        self.cpp_info.set_property("cmake_target_name", "uniws::uniws")
        self.cpp_info.set_property("pkg_config_name", "uniws")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
