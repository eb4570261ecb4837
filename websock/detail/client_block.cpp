// ServerCore::make_client: a Client, its ClientCore and the shared_ptr's control block in one
// slab slot (issue 12: three allocations were three heap headers, and a Client and its core
// that live as long as the connection, made between the short-lived allocations of other
// handshakes, pinned the heap's holes; see slab.hpp).
//
// The shared_ptr is made from the Client's pointer, so that shared_from_this() works, with
// an allocator that hands the control block the front of the slot, and a deleter that runs
// the Client's destructor in place. The slot goes back when the control block does (the
// last weak_ptr gone), which is the last use of any of it.
#include <cstddef>
#include <memory>

#include "websock/detail/server_core.hpp"

namespace websock::detail {
namespace {

constexpr std::size_t kControlRoom = 32;  // libstdc++: vtable, two counts, the pointer, this allocator
constexpr std::size_t kClientOffset = kControlRoom;
constexpr std::size_t kCoreOffset = (kClientOffset + sizeof(Client) + 15) / 16 * 16;
constexpr std::size_t kBlockBytes = kCoreOffset + sizeof(ClientCore);
static_assert(kBlockBytes <= kSlabMaxBytes);
static_assert(alignof(Client) <= 16 && alignof(ClientCore) <= 16);

/// Gives the control block the front of the client's slot; giving it back frees the slot.
template <class T>
struct FrontOfSlot {
    using value_type = T;
    void* slot;
    explicit FrontOfSlot(void* block) noexcept : slot(block) {}
    template <class U>
    FrontOfSlot(const FrontOfSlot<U>& other) noexcept : slot(other.slot) {}
    T* allocate(std::size_t count) noexcept {
        static_assert(sizeof(T) <= kControlRoom, "the control block does not fit the room kept for it");
        (void)count;  // always 1: shared_ptr's control block
        return static_cast<T*>(slot);
    }
    void deallocate(T*, std::size_t) noexcept { slab_deallocate(slot, kBlockBytes); }
    template <class U>
    bool operator==(const FrontOfSlot<U>& other) const noexcept {
        return slot == other.slot;
    }
};

struct DestroyInPlace {
    void operator()(Client* client) const noexcept { client->~Client(); }  // and its core (ClientCore::operator delete)
};

}  // namespace

std::shared_ptr<Client> ServerCore::make_client() {
    void* slot = slab_allocate(kBlockBytes);
    auto* bytes = static_cast<std::byte*>(slot);
    ClientCore* core;
    try {
        core = ::new (bytes + kCoreOffset) ClientCore();
    } catch (...) {
        slab_deallocate(slot, kBlockBytes);
        throw;
    }
    auto* client = ::new (bytes + kClientOffset) Client(std::unique_ptr<ClientCore>(core));
    return std::shared_ptr<Client>(client, DestroyInPlace{}, FrontOfSlot<Client>(slot));
}

}  // namespace websock::detail
