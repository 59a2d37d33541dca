// uniws/uniws.hpp - everything in uniws that needs only the standard library.
#pragma once

#include <uniws/concepts.hpp>
#include <uniws/sync_wait.hpp>
#include <uniws/task.hpp>
