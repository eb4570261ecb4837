// The slab (see slab.hpp): per size (in 16-byte steps), 64 KiB chunks mapped on their own
// and aligned to their size, so a slot finds its chunk by masking its address. A chunk hands
// out slots from its free list, then from untouched memory (so an unused page is never
// resident); chunks with a free slot are listed, the one that gained a slot last first.
#include "websock/detail/slab.hpp"

#include <sys/mman.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

#if defined(__SANITIZE_ADDRESS__)
#define WEBSOCK_SLAB_IS_OPERATOR_NEW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEBSOCK_SLAB_IS_OPERATOR_NEW 1
#endif
#endif

namespace websock::detail {
namespace {

std::atomic<std::size_t> mapped_bytes{0};  // chunks and own mappings
std::atomic<std::size_t> live_bytes{0};    // slots handed out and own mappings

#ifndef WEBSOCK_SLAB_IS_OPERATOR_NEW
constexpr std::size_t kChunkBytes = 64 * 1024;
constexpr std::size_t kStep = 16;
constexpr std::size_t kClasses = kSlabMaxBytes / kStep;

struct FreeSlot {
    FreeSlot* next;
};

struct Chunk {
    std::size_t slot_bytes;
    std::size_t live = 0;             // slots handed out
    std::size_t untouched;            // offset of the first slot never handed out
    FreeSlot* free = nullptr;         // slots given back
    Chunk* prev = nullptr;            // in its class's list of chunks with room
    Chunk* next = nullptr;
    bool listed = false;
};
constexpr std::size_t kHeaderBytes = (sizeof(Chunk) + kStep - 1) / kStep * kStep;

/// A mapping of kChunkBytes aligned to kChunkBytes (a double mapping, trimmed), or null.
void* map_chunk() noexcept {
    void* raw = ::mmap(nullptr, 2 * kChunkBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const auto start = reinterpret_cast<std::uintptr_t>(raw);
    const auto aligned = (start + kChunkBytes - 1) & ~(kChunkBytes - 1);
    if (aligned > start) ::munmap(raw, aligned - start);
    if (const auto end = start + 2 * kChunkBytes; end > aligned + kChunkBytes)
        ::munmap(reinterpret_cast<void*>(aligned + kChunkBytes), end - aligned - kChunkBytes);
    mapped_bytes.fetch_add(kChunkBytes, std::memory_order_relaxed);
    return reinterpret_cast<void*>(aligned);
}

class SizeClass {
public:
    void* allocate(std::size_t slot_bytes) {
        std::lock_guard lock(mutex_);
        Chunk* chunk = with_room_;
        if (chunk == nullptr) {
            void* memory = map_chunk();
            if (memory == nullptr) throw std::bad_alloc();
            chunk = new (memory) Chunk{slot_bytes, 0, kHeaderBytes};
            ++chunks_;
            link(chunk);
        }
        void* slot;
        if (chunk->free != nullptr) {
            slot = chunk->free;
            chunk->free = chunk->free->next;
        } else {
            slot = reinterpret_cast<char*>(chunk) + chunk->untouched;
            chunk->untouched += slot_bytes;
        }
        ++chunk->live;
        live_bytes.fetch_add(slot_bytes, std::memory_order_relaxed);
        if (chunk->free == nullptr && chunk->untouched + slot_bytes > kChunkBytes) unlink(chunk);  // full
        return slot;
    }

    void deallocate(void* slot) noexcept {
        auto* chunk = reinterpret_cast<Chunk*>(reinterpret_cast<std::uintptr_t>(slot) & ~(kChunkBytes - 1));
        std::lock_guard lock(mutex_);
        auto* freed = static_cast<FreeSlot*>(slot);
        freed->next = chunk->free;
        chunk->free = freed;
        --chunk->live;
        live_bytes.fetch_sub(chunk->slot_bytes, std::memory_order_relaxed);
        if (chunk->live == 0 && chunks_ > 1) {  // empty: unmapped, unless it is the last one
            if (chunk->listed) unlink(chunk);
            --chunks_;
            ::munmap(chunk, kChunkBytes);
            mapped_bytes.fetch_sub(kChunkBytes, std::memory_order_relaxed);
            return;
        }
        // The chunk that gained a slot goes first: new objects fill the chunks in use
        // rather than spreading over all of them.
        if (chunk->listed) unlink(chunk);
        link(chunk);
    }

private:
    void link(Chunk* chunk) noexcept {
        chunk->prev = nullptr;
        chunk->next = with_room_;
        if (with_room_ != nullptr) with_room_->prev = chunk;
        with_room_ = chunk;
        chunk->listed = true;
    }
    void unlink(Chunk* chunk) noexcept {
        if (chunk->prev != nullptr) chunk->prev->next = chunk->next;
        else with_room_ = chunk->next;
        if (chunk->next != nullptr) chunk->next->prev = chunk->prev;
        chunk->prev = chunk->next = nullptr;
        chunk->listed = false;
    }

    std::mutex mutex_;
    Chunk* with_room_ = nullptr;  // chunks with a free slot (guarded)
    std::size_t chunks_ = 0;      // (guarded)
};

// Never destroyed: a Client handle may outlive main()'s statics.
std::array<SizeClass, kClasses>& classes() {
    static auto* all = new std::array<SizeClass, kClasses>();
    return *all;
}

std::size_t class_of(std::size_t bytes) noexcept { return (bytes + kStep - 1) / kStep - 1; }
#endif

}  // namespace

#ifdef WEBSOCK_SLAB_IS_OPERATOR_NEW
void* slab_allocate(std::size_t bytes) { return ::operator new(bytes); }
void slab_deallocate(void* slot, std::size_t) noexcept { ::operator delete(slot); }
void* page_allocate(std::size_t bytes) { return ::operator new(bytes); }
void page_deallocate(void* pointer, std::size_t) noexcept { ::operator delete(pointer); }
#else
void* page_allocate(std::size_t bytes) {
    void* memory = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    mapped_bytes.fetch_add(bytes, std::memory_order_relaxed);
    live_bytes.fetch_add(bytes, std::memory_order_relaxed);
    return memory;
}
void page_deallocate(void* pointer, std::size_t bytes) noexcept {
    if (pointer == nullptr) return;
    ::munmap(pointer, bytes);
    mapped_bytes.fetch_sub(bytes, std::memory_order_relaxed);
    live_bytes.fetch_sub(bytes, std::memory_order_relaxed);
}
void* slab_allocate(std::size_t bytes) {
    if (bytes > kSlabMaxBytes) return ::operator new(bytes);
    const std::size_t index = class_of(bytes == 0 ? 1 : bytes);
    return classes()[index].allocate((index + 1) * kStep);
}
void slab_deallocate(void* slot, std::size_t bytes) noexcept {
    if (slot == nullptr) return;
    if (bytes > kSlabMaxBytes) return ::operator delete(slot);
    classes()[class_of(bytes == 0 ? 1 : bytes)].deallocate(slot);
}
#endif

std::size_t slab_mapped_bytes() noexcept { return mapped_bytes.load(std::memory_order_relaxed); }
std::size_t slab_live_bytes() noexcept { return live_bytes.load(std::memory_order_relaxed); }

}  // namespace websock::detail
