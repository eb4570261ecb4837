// How a node that starts (or restarts) beside running ones gets the channelstream state.
//
// Every node applies every operation in the bus's one order (module.hpp), but a node that
// starts later reads the bus only from its start: on its own it would begin with an empty
// state. So, when the bus is shared (RedisBus), a starting node is SYNCING:
//
//   1. it publishes {"op": "snapshot-request", "id": R, "node": SELF} and keeps every
//      operation it reads from the bus in a JoinBuffer (bounded; on overflow it empties the
//      buffer and asks again);
//   2. every SYNCED node that applies R notes it and, at its next tick (never from inside the
//      bus's handler), publishes {"op": "snapshot", "for": SELF, "request": R, "last_applied":
//      L, "state": ...}: its state and the id L of the last operation it had applied, taken
//      together under the state's lock. A node that sees a snapshot for R go by before its own
//      tick does not send one, so usually one node answers; the joiner takes the first;
//   3. the joiner loads the state, drops from its buffer every operation up to and including L
//      (L comes after R in the bus's order, and the buffer holds everything from before R),
//      applies the rest in order, and is synced. Other nodes ignore snapshots not meant for
//      them;
//   4. when no snapshot comes within `snapshot_wait` of R coming back on the bus, no synced
//      node exists (the first node, or every node restarted): the joiner starts from the empty
//      state (a fresh cluster's) and applies its whole buffer.
//
// While syncing a node answers the API's requests that need the state with 503 and
// Retry-After. The counts below are the limits; SyncOptions names them.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hub::channelstream {

struct SyncOptions {
    /// Operations a syncing node keeps while its snapshot is on the way (count and bytes).
    /// Beyond either it empties the buffer and asks again (the snapshot answering the old
    /// request could not be completed from what is left).
    std::size_t max_buffered_ops = 100'000;
    std::size_t max_buffered_bytes = 64u * 1024 * 1024;
    /// How long after its request came back on the bus a joiner waits for a snapshot before it
    /// decides no synced node exists. Synced nodes answer at their next tick (about once a
    /// second), so this is a few ticks.
    std::chrono::milliseconds snapshot_wait{3000};
    /// A request that has not come back on the bus within this time is sent again (lost with
    /// a Redis outage).
    std::chrono::milliseconds request_resend{5000};
    /// After a snapshot that could not be used (too large, malformed), ask again this late.
    std::chrono::milliseconds retry_after_failure{10'000};
    /// The largest snapshot a node publishes (its JSON text). A larger state is refused with a
    /// short "error" snapshot: the joiner logs it and stays syncing, asking again later. Well
    /// under RedisBus's 64 MiB of pending publishes; Redis itself takes entries up to 512 MB.
    std::size_t max_snapshot_bytes = 32u * 1024 * 1024;
    /// snapshot-requests a synced node remembers until its next tick (more joiners at once
    /// than this: the others are answered by other nodes, or ask again).
    std::size_t max_pending_requests = 64;
};

/// The operations a syncing node read from the bus, in order. Sans I/O; not thread-safe.
class JoinBuffer {
public:
    JoinBuffer(std::size_t max_ops, std::size_t max_bytes) : max_ops_(max_ops), max_bytes_(max_bytes) {}

    /// Keep `op` (its JSON text was `bytes` long). False, and the buffer emptied, when that
    /// would pass a limit: the caller must ask for a snapshot again.
    bool add(nlohmann::json op, std::size_t bytes);
    /// The operations after the one whose "id" is `last_applied`, in order; nullopt when that
    /// id is not in the buffer (the snapshot was made before the buffer's start).
    std::optional<std::vector<nlohmann::json>> after(const std::string& last_applied) const;
    /// Everything, in order, leaving the buffer empty.
    std::vector<nlohmann::json> take_all();
    void clear();
    std::size_t size() const noexcept { return ops_.size(); }
    std::size_t bytes() const noexcept { return bytes_; }

private:
    std::size_t max_ops_;
    std::size_t max_bytes_;
    std::deque<nlohmann::json> ops_;
    std::size_t bytes_ = 0;
};

}  // namespace hub::channelstream
