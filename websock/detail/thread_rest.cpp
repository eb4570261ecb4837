// See thread_rest.hpp.
#include "websock/detail/thread_rest.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <new>
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

ReadBufferPool::~ReadBufferPool() {
    for (std::uint8_t* buffer : free_) ::munmap(buffer, buffer_bytes_);
}

std::uint8_t* ReadBufferPool::take() {
    {
        std::lock_guard lock(mutex_);
        if (!free_.empty()) {
            std::uint8_t* buffer = free_.back();
            free_.pop_back();
            return buffer;
        }
        if (free_.capacity() < keep_) free_.reserve(keep_);  // give() must not allocate
        ++mapped_;
    }
    void* mapped = ::mmap(nullptr, buffer_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) {
        std::lock_guard lock(mutex_);
        --mapped_;
        throw std::bad_alloc();
    }
    return static_cast<std::uint8_t*>(mapped);
}

void ReadBufferPool::give(std::uint8_t* buffer) noexcept {
    if (buffer == nullptr) return;
    {
        std::lock_guard lock(mutex_);
        if (free_.size() < keep_ && free_.size() < free_.capacity()) {
            free_.push_back(buffer);
            return;
        }
        --mapped_;
    }
    ::munmap(buffer, buffer_bytes_);
}

std::size_t ReadBufferPool::mapped() const {
    std::lock_guard lock(mutex_);
    return mapped_;
}

std::size_t ReadBufferPool::free_count() const {
    std::lock_guard lock(mutex_);
    return free_.size();
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
