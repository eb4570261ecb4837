// See thread_rest.hpp.
#include "websock/detail/thread_rest.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

namespace websock::detail {

namespace {

std::uintptr_t page_size() noexcept {
    static const auto size = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    return size;
}

}  // namespace

StackRange current_stack_range() noexcept {
    pthread_attr_t attributes;
    if (::pthread_getattr_np(::pthread_self(), &attributes) != 0) return {};
    void* address = nullptr;
    std::size_t size = 0;
    const int error = ::pthread_attr_getstack(&attributes, &address, &size);
    ::pthread_attr_destroy(&attributes);
    if (error != 0 || address == nullptr) return {};
    const auto low = reinterpret_cast<std::uintptr_t>(address);
    return StackRange{low, low + size};
}

std::size_t drop_pages(void* data, std::size_t size) noexcept {
    const std::uintptr_t page = page_size();
    const auto begin = (reinterpret_cast<std::uintptr_t>(data) + page - 1) / page * page;
    const auto end = (reinterpret_cast<std::uintptr_t>(data) + size) / page * page;
    if (end <= begin) return 0;
    if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED) != 0) return 0;
    return end - begin;
}

// noinline: the address of `here` must be in this call's own frame, below the caller's.
[[gnu::noinline]] std::size_t drop_stack_below_caller(const StackRange& stack, std::size_t margin) noexcept {
    if (!stack.known()) return 0;
    volatile char here = 0;
    const auto frame = reinterpret_cast<std::uintptr_t>(&here);
    if (frame <= stack.low || frame > stack.high) return 0;  // not this thread's stack
    const std::uintptr_t page = page_size();
    if (frame - stack.low <= margin + page) return 0;
    const std::uintptr_t end = (frame - margin) / page * page;
    if (::madvise(reinterpret_cast<void*>(stack.low), end - stack.low, MADV_DONTNEED) != 0) return 0;
    return end - stack.low;
}

long resident_pages(const void* data, std::size_t size) noexcept {
    const std::uintptr_t page = page_size();
    const auto begin = reinterpret_cast<std::uintptr_t>(data) / page * page;
    const auto end = (reinterpret_cast<std::uintptr_t>(data) + size + page - 1) / page * page;
    if (end <= begin) return 0;
    try {
        std::vector<unsigned char> flags((end - begin) / page);
        if (::mincore(reinterpret_cast<void*>(begin), end - begin, flags.data()) != 0) return -1;
        long resident = 0;
        for (const unsigned char flag : flags) resident += flag & 1;
        return resident;
    } catch (...) {
        return -1;
    }
}

}  // namespace websock::detail
