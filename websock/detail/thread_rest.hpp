// What a thread-per-client thread gives back once its connection has been quiet a while
// (issue 12, idle memory): the resident pages of its read buffer and of its stack below the
// frame it waits in. Both hold nothing between events, so the kernel may drop them; they are
// zero-filled again on the next touch. Internal.
#pragma once

#include <cstddef>
#include <cstdint>

namespace websock::detail {

/// The calling thread's usable stack (without its guard page), as glibc reports it.
struct StackRange {
    std::uintptr_t low = 0;   ///< lowest usable address
    std::uintptr_t high = 0;  ///< one past the highest (glibc's thread descriptor sits just below)
    bool known() const noexcept { return high > low; }
};

/// The calling thread's stack range; unknown (empty) when glibc cannot tell.
StackRange current_stack_range() noexcept;

/// madvise(MADV_DONTNEED) on the whole pages inside [data, data + size): their contents are
/// dropped. Returns the bytes covered (0 when no whole page lies inside, or on failure).
std::size_t drop_pages(void* data, std::size_t size) noexcept;

/// Drop the calling thread's stack pages below the caller's frame, keeping `margin` bytes
/// under it for the calls it makes next (poll() and what the kernel's signal delivery
/// needs). Must be called on the thread `stack` describes. Returns the bytes covered.
std::size_t drop_stack_below_caller(const StackRange& stack, std::size_t margin = 8192) noexcept;

/// How many pages of [data, data + size) are resident (mincore); -1 when it cannot tell.
/// For tests and measurements.
long resident_pages(const void* data, std::size_t size) noexcept;

}  // namespace websock::detail
