// Memory for what an idle connection keeps for its whole life (its Client, ClientCore and
// driver, the registries' entries, the packed upgrade request), apart from the heap.
//
// Why (issue 12): in glibc's heap, a connection's long-lived objects are made between the
// short-lived ones of the handshakes around it (request parsers, buffers, Connections).
// When those are freed the holes stay resident, since the heap only gives back memory at its
// top: about 400 bytes per idle connection at 10,000 connections. Here every such object
// sits in a slot of a 64 KiB chunk mapped for objects of its size alone, so the handshakes'
// memory is the heap's and goes back to it whole. Internal.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>

namespace websock::detail {

/// Objects up to this size come from the slab; bigger ones from operator new.
inline constexpr std::size_t kSlabMaxBytes = 1024;

/// A slot of at least `bytes`, 16-byte aligned (past kSlabMaxBytes: operator new); any
/// thread. Throws std::bad_alloc. Under AddressSanitizer this is operator new, so lifetimes
/// stay checked.
void* slab_allocate(std::size_t bytes);
/// Give back a slot slab_allocate(bytes) gave, with the same `bytes`; any thread. A chunk
/// whose last slot comes back is unmapped, except one kept per size for the next connection.
void slab_deallocate(void* slot, std::size_t bytes) noexcept;

/// Bytes mapped now: slab chunks (of every size) and page_allocate()'s mappings; for tests.
/// Zero under AddressSanitizer, where all of it is operator new.
std::size_t slab_mapped_bytes() noexcept;
/// Bytes handed out now: slots (at their slot size) and page_allocate()'s mappings; for tests.
std::size_t slab_live_bytes() noexcept;

/// Arrays of at least this size get a mapping of their own (page_allocate()).
inline constexpr std::size_t kOwnMappingBytes = 64 * 1024;

/// `bytes` (at least kOwnMappingBytes) in a mapping of their own, given back to the system
/// whole by page_deallocate(pointer, bytes). Throws std::bad_alloc. Under AddressSanitizer
/// this is operator new.
void* page_allocate(std::size_t bytes);
void page_deallocate(void* pointer, std::size_t bytes) noexcept;

/// A standard allocator for what lives as long as the connections: single objects (hash-map
/// nodes, strings up to kSlabMaxBytes) take slab slots; arrays of kOwnMappingBytes or more
/// (the buckets and the timer heap of many connections) a mapping of their own, so they do
/// not pin the heap's top either; the sizes between, operator new.
template <class T>
struct SlabAllocator {
    using value_type = T;
    SlabAllocator() noexcept = default;
    template <class U>
    SlabAllocator(const SlabAllocator<U>&) noexcept {}

    T* allocate(std::size_t count) {
        static_assert(alignof(T) <= 16, "slab slots are 16-byte aligned");
        if (count <= kSlabMaxBytes / sizeof(T)) return static_cast<T*>(slab_allocate(count * sizeof(T)));
        if (count >= kOwnMappingBytes / sizeof(T)) {
            if (count > std::size_t(-1) / sizeof(T)) throw std::bad_alloc();
            return static_cast<T*>(page_allocate(count * sizeof(T)));
        }
        return static_cast<T*>(::operator new(count * sizeof(T)));
    }
    void deallocate(T* pointer, std::size_t count) noexcept {
        if (count <= kSlabMaxBytes / sizeof(T)) return slab_deallocate(pointer, count * sizeof(T));
        if (count >= kOwnMappingBytes / sizeof(T)) return page_deallocate(pointer, count * sizeof(T));
        ::operator delete(pointer);
    }
    template <class U>
    bool operator==(const SlabAllocator<U>&) const noexcept {
        return true;
    }
};

}  // namespace websock::detail
