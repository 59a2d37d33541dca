// uniws/uniws.hpp - everything in uniws that needs only the standard library
// (uniws/testing.hpp, the test doubles, is included separately).
#pragma once

#include <uniws/broker.hpp>
#include <uniws/broker_variant.hpp>
#include <uniws/concepts.hpp>
#include <uniws/connection.hpp>
#include <uniws/events.hpp>
#include <uniws/factory.hpp>
#include <uniws/histogram.hpp>
#include <uniws/manager.hpp>
#include <uniws/message.hpp>
#include <uniws/prometheus.hpp>
#include <uniws/registry.hpp>
#include <uniws/send_queue.hpp>
#include <uniws/stats.hpp>
#include <uniws/sync_wait.hpp>
#include <uniws/task.hpp>
#include <uniws/version.hpp>
