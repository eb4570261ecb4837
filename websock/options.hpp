// Every setting of a WebSocketServer, each with its default and the reason for it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "websock/codec/deflate.hpp"
#include "websock/extension.hpp"
#include "websock/handshake_policy.hpp"

namespace websock {

/// What `send` does when a client's outbound queue would pass `max_outbound_queue_bytes`.
enum class QueueFullPolicy : std::uint8_t {
    Close,  ///< close the client with 1008 and a reason; send returns Closed (the default:
            ///< a subscriber that cannot keep up is told why, rather than silently missing data)
    Drop,   ///< discard this message and report it to on_error; send returns Dropped
};

/// How the server runs its clients. Both give the same callbacks, the same Client API and
/// the same protocol behaviour (one ClientDriver class does the work in both).
enum class Engine : std::uint8_t {
    ThreadPerClient,  ///< the default: accept loop on the serve_forever() thread, one thread
                      ///< per client; callbacks may block without stalling other clients
    EventLoop,        ///< epoll loops (ServerOptions::event_loops, default one, on the
                      ///< serve_forever() thread) run every client: no thread per client, no
                      ///< context switch per message; callbacks must not block, since every
                      ///< client of that loop waits while one runs
};

using Milliseconds = std::chrono::milliseconds;  ///< the unit of most timeouts in the options
using Microseconds = std::chrono::microseconds;  ///< the unit of ServerOptions::busy_poll

/// wss://: TLS 1.2 and 1.3 with OpenSSL. Off unless a certificate is given.
struct TlsOptions {
    std::string certificate_file;  ///< PEM, the certificate chain (leaf first)
    std::string private_key_file;  ///< PEM, the key of the leaf certificate
    bool enabled() const noexcept { return !certificate_file.empty(); }  ///< a certificate was given: wss://
};

/// Every setting of a WebSocketServer, each with its default and the reason for it.
struct ServerOptions {
    Engine engine = Engine::ThreadPerClient;  ///< see Engine
    /// EventLoop engine only: how many epoll loops, each on its own thread (the first on the
    /// thread of serve_forever()); 0 = one per core. Loop 0 accepts and hands connections out
    /// in turn; a connection stays on its loop, and its callbacks run there, so callbacks of
    /// different connections may run at the same time. Sends are safe from any thread.
    std::size_t event_loops = 1;

    // --- where to listen ---
    std::string host = "127.0.0.1";  ///< loopback by default: exposing a server is a decision
    std::uint16_t port = 8080;       ///< 0 picks a free port; read it back with WebSocketServer::port()
    std::string unix_socket_path;    ///< when set, listen on this unix socket instead of TCP
    int backlog = 511;               ///< listen(2) queue, as nginx and Node use
    bool reuse_address = true;       ///< SO_REUSEADDR: restart without waiting out TIME_WAIT
    bool reuse_port = false;         ///< SO_REUSEPORT: several processes on one port
    /// An already-listening socket (TCP or unix) to serve instead of binding host:port or
    /// unix_socket_path: systemd socket activation (LISTEN_FDS), or the socket a predecessor
    /// handed down in a zero-downtime restart (WebSocketServer::duplicate_listen_socket).
    /// -1: bind as usual. The server owns it from listen() on (made non-blocking and
    /// close-on-exec, closed when serving ends); host, port, backlog and the reuse options
    /// are then unused, and unix_socket_path only names it (it is not unlinked at the end:
    /// the socket file belongs to whoever made it).
    int listen_fd = -1;

    TlsOptions tls;  ///< wss:// when a certificate is set; the TLS handshake shares handshake_timeout

    // --- handshake ---
    HandshakePolicy policy;  ///< paths, Origins, subprotocols, Basic auth; all open by default
    std::size_t max_handshake_bytes = 8 * 1024;  ///< request line + headers; 431 past it (browsers send < 2 KiB)
    Milliseconds handshake_timeout{5000};        ///< a connection that has not finished its upgrade
                                                 ///< by then is dropped (slowloris)
    std::size_t max_http_body_bytes = 1 << 20;   ///< bodies of plain HTTP requests; 413 past it
    /// An asynchronous HTTP handler (on_http_request_async) that has not answered by then:
    /// the server answers 503 itself. Long enough for a long poll (channelstream: ~60 s).
    Milliseconds http_response_timeout{120000};

    // --- messages ---
    /// permessage-deflate (RFC 7692): off unless `deflate.enabled`. Messages under
    /// `deflate.min_compress_bytes` go out uncompressed, and so do frames made once for many
    /// clients (send_encoded, send_all). Costs about 300 KiB of zlib state per client that uses it.
    codec::DeflateOptions deflate;
    /// More extensions (see websock/extension.hpp), tried after permessage-deflate; a
    /// connection gets the first one that agrees.
    std::vector<std::shared_ptr<ExtensionFactory>> extensions;
    std::size_t max_frame_bytes = 16u << 20;    ///< one frame's payload; 1009 past it
    std::size_t max_message_bytes = 16u << 20;  ///< a reassembled message; 1009 past it
    std::size_t read_buffer_bytes = 64 * 1024;  ///< one read(2) takes at most this much

    // --- outbound ---
    std::size_t max_outbound_queue_bytes = 64u << 20;  ///< bytes waiting for one slow client;
                                                        ///< above a 16 MiB message plus slack
    QueueFullPolicy queue_full_policy = QueueFullPolicy::Close;  ///< past it: close with 1008, or drop
    /// The server's budget for bytes waiting for slow clients, all clients together: a send
    /// that would pass it, to a client already more than 64 KiB behind, gets
    /// `queue_full_policy` (1008 or a drop) as if that client's own queue were full. Without
    /// it, each of many clients that stop reading may hold `max_outbound_queue_bytes`, and a
    /// few hundred of them exhaust the machine's memory. Only what a client has beyond its
    /// first 64 KiB counts, so clients that keep up are never cut for the slow ones (and pay
    /// no shared counter per message). SIZE_MAX: no budget.
    std::size_t max_total_outbound_bytes = std::size_t{1} << 30;
    /// The server's budget for messages being received, all clients together: a client whose
    /// message in progress is past 64 KiB, reading while the sum of all such messages is past
    /// this, is closed with 1013 (try again later). Each message is bounded by
    /// `max_message_bytes`, but without this a few hundred clients that each send most of a
    /// large message and stop exhaust the machine's memory. Only what a message holds past its
    /// first 64 KiB counts. SIZE_MAX: no budget.
    std::size_t max_total_incoming_message_bytes = std::size_t{1} << 30;
    /// ThreadPerClient engine, plain TCP: a send from another thread (send_all, a broadcast)
    /// to a client whose thread has nothing left to write goes straight to its socket instead
    /// of waking that thread to write it; what the socket does not take is queued as usual.
    /// Order per sender, the queue's bound and one writer per socket still hold. Off: every
    /// such send wakes the client's thread to write it (as before this option).
    bool direct_sends = true;

    // --- clients ---
    std::size_t max_clients = 10000;  ///< open WebSocket clients; more get 503 (one thread each)
    /// ThreadPerClient engine only: the stack reserved for each client thread, on which its
    /// callbacks run; 0 = the system's default (glibc: `ulimit -s`, usually 8 MiB). Memory is
    /// spent only on the pages a thread touches (an idle echo client: two 4 KiB pages, with
    /// 8 MiB as with 256 KiB, measured), so this does not change RSS: it bounds the address
    /// space 10,000 threads reserve (2.5 GiB instead of 80, which matters under strict
    /// overcommit, and lets glibc keep more freed stacks for reuse) and how deep a callback
    /// may go. Our own deepest path (a TLS handshake, then permessage-deflate messages of
    /// 1 MiB) touched 20 KiB of it, glibc's thread descriptor included (release build,
    /// measured with mincore); the rest is for the user's callbacks. Raise it for callbacks
    /// that recurse deeply or keep large arrays on the stack.
    std::size_t thread_stack_bytes = 256 * 1024;

    // --- liveness ---
    Milliseconds idle_ping_interval{30000};  ///< ping a client silent this long; 0 turns it off
    Milliseconds pong_timeout{10000};        ///< no pong (or any data) this long after a ping: drop it
    Milliseconds close_timeout{5000};        ///< wait this long for the peer's close frame / EOF

    // --- latency ---
    /// EventLoop engine only: after handling events, keep polling (without sleeping) for this
    /// long before blocking in epoll_wait. A sleeping loop pays a wake-up (on a VM, an
    /// interrupt and a scheduler round trip, tens to hundreds of µs) for each message that
    /// arrives alone; a spinning one does not. Costs up to a whole core while traffic keeps
    /// arriving within the window, so it is off by default; 50-200 µs suits latency-bound
    /// servers with a core to spare.
    Microseconds busy_poll{0};
    // --- errors ---
    /// At most this many on_error reports of each ErrorKind per second; the rest are counted
    /// and told in one report ("N more ... errors were not reported") once the second is
    /// over. A flood of hostile clients (bad handshakes, accept failing with EMFILE) then
    /// cannot make a server log without bound. 0: report everything.
    std::size_t max_error_reports_per_second = 50;

    // --- shutdown ---
    /// stop(): time clients get to finish the close handshake (the drain of a restart)
    Milliseconds shutdown_timeout{3000};
    bool handle_signals = false;          ///< SIGINT/SIGTERM call stop() (opt-in: a library should
                                          ///< not take over a process's signals unasked)
};

}  // namespace websock
