// ReportLimiter: a burst of reports of one kind is cut to N per second, and what was held
// back is told as one count when the second is over; kinds do not share a budget.
#include <doctest/doctest.h>

#include "websock/detail/report_limiter.hpp"

using websock::ErrorKind;
using websock::detail::ReportLimiter;

TEST_CASE("report limiter: N per second per kind, then one count") {
    ReportLimiter limiter(3);
    const auto start = ReportLimiter::Clock::time_point{} + std::chrono::hours(1);
    std::vector<ReportLimiter::Suppressed> ended;
    int admitted = 0;
    for (int i = 0; i < 1000; ++i) admitted += limiter.admit(ErrorKind::Limit, start + std::chrono::microseconds(i), ended);
    CHECK(admitted == 3);
    CHECK(ended.empty());
    CHECK(limiter.pending());
    // Another kind has its own budget.
    CHECK(limiter.admit(ErrorKind::Handshake, start, ended));
    // Nothing is told before the second is over...
    limiter.take_ended(start + std::chrono::milliseconds(999), ended);
    CHECK(ended.empty());
    // ... and then the count, once.
    limiter.take_ended(start + std::chrono::milliseconds(1001), ended);
    REQUIRE(ended.size() == 1);
    CHECK(ended[0].kind == ErrorKind::Limit);
    CHECK(ended[0].count == 997);
    CHECK(!limiter.pending());
    ended.clear();
    // A new second has a new budget; the first report of it tells no stale count.
    CHECK(limiter.admit(ErrorKind::Limit, start + std::chrono::milliseconds(1500), ended));
    CHECK(ended.empty());
}

TEST_CASE("report limiter: the next report after a suppressed second carries its count") {
    ReportLimiter limiter(1);
    const auto start = ReportLimiter::Clock::time_point{} + std::chrono::hours(1);
    std::vector<ReportLimiter::Suppressed> ended;
    CHECK(limiter.admit(ErrorKind::Io, start, ended));
    CHECK(!limiter.admit(ErrorKind::Io, start, ended));
    CHECK(!limiter.admit(ErrorKind::Io, start, ended));
    CHECK(limiter.admit(ErrorKind::Io, start + std::chrono::seconds(2), ended));
    REQUIRE(ended.size() == 1);
    CHECK(ended[0].count == 2);
}

TEST_CASE("report limiter: 0 means no limit; take_all empties") {
    ReportLimiter unlimited(0);
    std::vector<ReportLimiter::Suppressed> ended;
    for (int i = 0; i < 100; ++i) CHECK(unlimited.admit(ErrorKind::Protocol, ReportLimiter::Clock::now(), ended));
    ReportLimiter limiter(1);
    const auto now = ReportLimiter::Clock::now();
    limiter.admit(ErrorKind::Tls, now, ended);
    limiter.admit(ErrorKind::Tls, now, ended);
    limiter.take_all(ended);
    REQUIRE(ended.size() == 1);
    CHECK(ended[0].count == 1);
    CHECK(!limiter.pending());
}
