#include "websock/detail/report_limiter.hpp"

namespace websock::detail {

void ReportLimiter::roll(std::size_t index, Clock::time_point now, std::vector<Suppressed>& ended) {
    Slot& slot = slots_[index];
    if (now - slot.started < kInterval) return;
    if (slot.suppressed > 0) ended.push_back({static_cast<ErrorKind>(index), slot.suppressed});
    slot = Slot{now, 0, 0};
}

bool ReportLimiter::admit(ErrorKind kind, Clock::time_point now, std::vector<Suppressed>& ended) {
    if (per_interval_ == 0) return true;
    const auto index = static_cast<std::size_t>(kind) % kKinds;
    std::lock_guard lock(mutex_);
    roll(index, now, ended);
    Slot& slot = slots_[index];
    if (slot.admitted < per_interval_) {
        ++slot.admitted;
        return true;
    }
    ++slot.suppressed;
    return false;
}

void ReportLimiter::take_ended(Clock::time_point now, std::vector<Suppressed>& ended) {
    if (per_interval_ == 0) return;
    std::lock_guard lock(mutex_);
    for (std::size_t index = 0; index < kKinds; ++index)
        if (slots_[index].suppressed > 0) roll(index, now, ended);
}

void ReportLimiter::take_all(std::vector<Suppressed>& ended) {
    std::lock_guard lock(mutex_);
    for (std::size_t index = 0; index < kKinds; ++index) {
        if (slots_[index].suppressed > 0) ended.push_back({static_cast<ErrorKind>(index), slots_[index].suppressed});
        slots_[index] = Slot{};
    }
}

bool ReportLimiter::pending() const {
    std::lock_guard lock(mutex_);
    for (const auto& slot : slots_)
        if (slot.suppressed > 0) return true;
    return false;
}

}  // namespace websock::detail
