// What a thread-per-client thread keeps while its client is idle (issue 12, idle memory):
// no read buffer (it borrows one from ReadBufferPool for each batch), and no stack pages
// below the frame it waits in once a deep path such as the handshake has returned (the
// kernel may drop them: they hold nothing, and are zero-filled again on the next touch).
// Internal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace websock::detail {

/// The calling thread's usable stack (without its guard page), as glibc reports it.
struct StackRange {
    std::uintptr_t low = 0;   ///< lowest usable address
    std::uintptr_t high = 0;  ///< one past the highest (glibc's thread descriptor sits just below)
    bool known() const noexcept { return high > low; }
};

/// The calling thread's stack range; unknown (empty) when glibc cannot tell.
StackRange current_stack_range() noexcept;

/// Drop the calling thread's stack pages below the caller's frame, keeping `margin` bytes
/// under it for the calls it makes next (poll() and what the kernel's signal delivery
/// needs). Must be called on the thread `stack` describes. Returns the bytes covered.
std::size_t drop_stack_below_caller(const StackRange& stack, std::size_t margin = 8192) noexcept;

/// Read buffers for client threads: a thread takes one after poll() returns and gives it
/// back before it sleeps (or yields), so that idle threads hold none and busy ones share
/// the few that are hot. Up to `keep` free buffers stay mapped (their touched pages stay
/// resident, for the next batch); one given back beyond that is unmapped. Thread-safe.
class ReadBufferPool {
public:
    ReadBufferPool(std::size_t buffer_bytes, std::size_t keep) : buffer_bytes_(buffer_bytes), keep_(keep) {}
    ~ReadBufferPool();  ///< unmaps the free buffers (every one must have been given back)
    ReadBufferPool(const ReadBufferPool&) = delete;
    ReadBufferPool& operator=(const ReadBufferPool&) = delete;

    std::size_t buffer_bytes() const noexcept { return buffer_bytes_; }
    /// A buffer of buffer_bytes(): a free one, else a new mapping. Throws std::bad_alloc.
    std::uint8_t* take();
    /// Back to the pool (or unmapped past `keep`). Never throws.
    void give(std::uint8_t* buffer) noexcept;
    /// Buffers mapped now, free or taken (tests).
    std::size_t mapped() const;
    /// Free buffers held now (tests).
    std::size_t free_count() const;

private:
    const std::size_t buffer_bytes_;
    const std::size_t keep_;
    mutable std::mutex mutex_;
    std::vector<std::uint8_t*> free_;  // (guarded); reserved to `keep`, so give() never allocates
    std::size_t mapped_ = 0;           // (guarded)
};

/// How many pages of [data, data + size) are resident (mincore); -1 when it cannot tell.
/// For tests and measurements.
long resident_pages(const void* data, std::size_t size) noexcept;

}  // namespace websock::detail
