// ReportLimiter: at most N error reports of each kind per second reach on_error; the rest
// are counted and summed up in one line when the second is over. A client must not be
// able to make the server write without bound: a flood of bad handshakes, or accept
// failing with EMFILE in a loop, costs one line per kind per second plus a count.
// Internal; used by ServerCore::report from any thread.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <vector>

#include "websock/types.hpp"

namespace websock::detail {

class ReportLimiter {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr auto kInterval = std::chrono::seconds(1);

    /// `per_interval` 0: no limit.
    explicit ReportLimiter(std::size_t per_interval) : per_interval_(per_interval) {}

    struct Suppressed {
        ErrorKind kind;
        std::size_t count;
    };

    /// Whether a report of `kind` made at `now` may go out. Reports suppressed in an
    /// interval that has ended are appended to `ended`, to be summed up by the caller.
    bool admit(ErrorKind kind, Clock::time_point now, std::vector<Suppressed>& ended);

    /// Counts of intervals that have ended by `now` (the engines call this now and then, so
    /// a burst's count is told even when no further report comes).
    void take_ended(Clock::time_point now, std::vector<Suppressed>& ended);

    /// Everything still counted, ended or not (at the end of serve_forever()).
    void take_all(std::vector<Suppressed>& ended);

    /// True while some count waits to be told.
    bool pending() const;

private:
    struct Slot {
        Clock::time_point started{};
        std::size_t admitted = 0;
        std::size_t suppressed = 0;
    };
    static constexpr std::size_t kKinds = 16;

    void roll(std::size_t index, Clock::time_point now, std::vector<Suppressed>& ended);

    std::size_t per_interval_;
    mutable std::mutex mutex_;
    std::array<Slot, kKinds> slots_{};
};

}  // namespace websock::detail
