// Opt-in, header-only allocator settings for server programs, so that a process's memory
// returns near its baseline after clients with big messages (or abusers) have left.
// websock-echo, websock-chat and websock-hub use both; the library itself never does, because
// malloc's policy belongs to the whole process and the program that owns it (docs/design.md,
// "Memory after abusers leave").
//
// return_freed_memory_promptly(): glibc's malloc serves requests of 128 KiB and more with
// mmap, but each free of such a block raises that threshold to the freed size (up to 32 MiB)
// and the heap's trim threshold to twice that (up to 64 MiB): the top of the heap and of
// every per-thread arena may then keep that much free for good. websock-echo stayed at 44-92
// MB (178 MB with TLS) after a red-team run, against 7.5 MB before, with ~215 KB in use.
// Setting the mmap threshold turns the dynamic adjustment off and leaves the trim threshold
// at 128 KiB, so the tops shrink as they free. The default, 32 MiB, keeps messages up to the
// 16 MiB limit in the heap: a 128 KiB threshold (an mmap and page faults for every big
// buffer) made 1 MiB echoes 2.3x slower on the event loop (docs/benchmarks.md, "Memory after
// abusers leave"). What is freed in the middle of a heap is the trimmer's.
//
// FreedMemoryTrimmer: what is freed in the middle of a heap (thousands of TLS connections'
// buffers, a 64 MiB outbound queue of 1 MiB messages) free() cannot give back; malloc_trim(0)
// can (it discards the free pages inside every arena; not a per-thread arena's top). A thread of its own looks every 2 s and
// trims when the free bytes grew by 1 MiB since it last looked low, so an idle process or
// a steady one costs one mallinfo2() walk of the free lists per period and no trim.
#pragma once

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#include <pthread.h>
#endif

namespace websock {

/// Fix glibc's M_MMAP_THRESHOLD (buffers of this many bytes and more get their own mapping,
/// unmapped on free), which turns off its dynamic raising of that and of M_TRIM_THRESHOLD
/// (heap tops past 128 KiB free are given back). Call it once,
/// before the server starts threads. True when set; false where the C library has no such
/// setting (not glibc; or a sanitizer's allocator, which ignores it) or it was refused.
/// The environment variable MALLOC_MMAP_THRESHOLD_, when set, wins: the call is skipped.
/// (MALLOC_TRIM_THRESHOLD_ is left alone too: a larger one keeps more at each arena's top,
/// for speed with big messages on threads; see docs/benchmarks.md.)
inline bool return_freed_memory_promptly(std::size_t mmap_threshold = 32u << 20) {
#if defined(__GLIBC__)
    // Let an operator's own tuning stand.
    if (const char* own = std::getenv("MALLOC_MMAP_THRESHOLD_"); own != nullptr && *own != '\0') return false;
    return mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap_threshold)) == 1;
#else
    (void)mmap_threshold;
    return false;
#endif
}

/// A thread that gives freed heap pages back to the system after memory was freed (see the
/// top of this file). Start it after any signal mask the program sets up: its own thread
/// blocks every signal either way. Does nothing where glibc's malloc_trim/mallinfo2 are absent.
class FreedMemoryTrimmer {
public:
    /// Starts the thread: every `period` it trims when the free bytes grew by `grown_bytes`.
    explicit FreedMemoryTrimmer(std::chrono::milliseconds period = std::chrono::seconds(2),
                                std::size_t grown_bytes = 1u << 20)
        : period_(period), grown_bytes_(grown_bytes) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
        // Signals go to the program's own threads, never to this one.
        sigset_t all, previous;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &previous);
        thread_ = std::thread([this] { run(); });
        pthread_sigmask(SIG_SETMASK, &previous, nullptr);
#endif
    }
    /// Stops the thread and waits for it (at most one trim's time).
    ~FreedMemoryTrimmer() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_one();
        if (thread_.joinable()) thread_.join();
    }
    FreedMemoryTrimmer(const FreedMemoryTrimmer&) = delete;
    FreedMemoryTrimmer& operator=(const FreedMemoryTrimmer&) = delete;

    /// How many times malloc_trim ran (tests, diagnostics).
    std::size_t trims() const {
        std::lock_guard lock(mutex_);
        return trims_;
    }

private:
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    void run() {
        // fordblks: free bytes in every arena (the top chunks included). Its lowest value
        // since the last trim is what the program has reused; growth past it was freed since.
        std::size_t lowest = mallinfo2().fordblks;
        std::unique_lock lock(mutex_);
        while (!wake_.wait_for(lock, period_, [this] { return stopping_; })) {
            lock.unlock();
            const std::size_t free_now = mallinfo2().fordblks;
            if (free_now < lowest) lowest = free_now;
            const bool trim = free_now - lowest >= grown_bytes_;
            if (trim) {
                malloc_trim(0);
                lowest = free_now;
            }
            lock.lock();
            if (trim) ++trims_;
        }
    }
#endif

    const std::chrono::milliseconds period_;
    const std::size_t grown_bytes_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::size_t trims_ = 0;
    std::thread thread_;
};

}  // namespace websock
