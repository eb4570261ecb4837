// An explicit, opt-in allocator setting for server programs: freed big message buffers go
// back to the operating system at once, so that a process's memory returns to its baseline
// after clients with big messages (or abusers) have left. websock-echo, websock-chat and
// websock-hub call it first thing in main(); the library itself never does, because malloc's
// policy belongs to the whole process and the program that owns it (docs/design.md, "Memory
// after big messages").
//
// Why: glibc's malloc serves requests of 128 KiB and more with mmap and unmaps them on free,
// but each such free raises that threshold to the freed size (up to 32 MiB). From then on big
// buffers come from the heap and the per-thread arenas, and what they leave there is kept:
// websock-echo stayed at 44-92 MB (178 MB with TLS) after a red-team run, against 7.5 MB
// before, though only ~215 KB was in use. A fixed threshold turns the dynamic one off.
// Measured cost: none seen on 64 KiB echoes (they stay in the heap), and within noise on
// 1 MiB echoes (docs/benchmarks.md, "Memory after big messages").
#pragma once

#include <cstddef>
#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace websock {

/// Buffers of `mmap_threshold` bytes and more get their own mapping, returned to the system
/// when freed (glibc's M_MMAP_THRESHOLD, fixed: its dynamic raising is off). Call it once,
/// before the server starts threads. True when set; false where the C library has no such
/// setting (not glibc; or a sanitizer's allocator, which ignores it) or it was refused.
/// The environment variable MALLOC_MMAP_THRESHOLD_, when set, wins: the call is skipped.
inline bool return_freed_memory_promptly(std::size_t mmap_threshold = 128 * 1024) {
#if defined(__GLIBC__)
    // Let an operator's own tuning stand.
    if (const char* own = std::getenv("MALLOC_MMAP_THRESHOLD_"); own != nullptr && *own != '\0') return false;
    return mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap_threshold)) == 1;
#else
    (void)mmap_threshold;
    return false;
#endif
}

}  // namespace websock
