// FaultyTransport: the test seam under ClientDriver. It wraps a connection's real transport
// (plain or TLS) and makes the Nth I/O call of a run fail in a chosen way, the approach of
// Boost.Beast's test::fail_count: run a scenario once to count its calls, then again
// failing call 1, 2, ... N in turn, with each failure that kind of call can return.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "websock/detail/transport.hpp"

namespace faults {

/// DirectWrite: a send from another thread written straight to the socket (ClientCore's
/// direct sends, thread engine, plain TCP); its failures must lose nothing.
enum class CallKind : std::uint8_t { Handshake, Read, Write, Shutdown, DirectWrite };

enum class Failure : std::uint8_t {
    WouldBlock,  ///< EAGAIN that the socket did not really say (level-triggered engines retry)
    ShortWrite,  ///< the kernel took only part of the bytes
    Eof,         ///< the peer's FIN
    Reset,       ///< ECONNRESET
    BrokenPipe,  ///< EPIPE
    TlsError,    ///< the TLS layer failed (a bad record, an alert)
    Skipped,     ///< shutdown(2) did nothing (no FIN went out)
};

const char* to_string(CallKind kind);
const char* to_string(Failure failure);

/// The failures a call of `kind` can return over this transport (`tls` or plain).
std::vector<Failure> failures_for(CallKind kind, bool tls);

/// One run's plan, shared by every transport of the run (all connections count together).
class FaultPlan {
public:
    /// Count only (fail_at 0), or fail call `fail_at` (1-based) with variant `variant` of the
    /// failures its kind can return (taken modulo their number).
    explicit FaultPlan(int fail_at = 0, std::size_t variant = 0) : fail_at_(fail_at), variant_(variant) {}

    /// Called by the transport for every call: the failure to inject, if this is the call.
    bool next(CallKind kind, bool tls, Failure& failure);

    int calls() const noexcept { return calls_.load(); }
    bool injected() const noexcept { return injected_.load(); }
    std::vector<CallKind> log() const;
    std::string injected_description() const;

private:
    int fail_at_;
    std::size_t variant_;
    std::atomic<int> calls_{0};
    std::atomic<bool> injected_{false};
    mutable std::mutex mutex_;
    std::vector<CallKind> log_;  // the kind of each call, in order (guarded)
    std::string description_;    // guarded
};

/// Wrap `inner` so that its calls are counted by `plan` and failed when it says.
std::unique_ptr<websock::detail::Transport> make_faulty_transport(std::unique_ptr<websock::detail::Transport> inner,
                                                                  std::shared_ptr<FaultPlan> plan, bool tls);

}  // namespace faults
