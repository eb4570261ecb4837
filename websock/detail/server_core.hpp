// The shared state behind Client and WebSocketServer. Internal: users see only server.hpp.
#pragma once

#include <pthread.h>

#include <any>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "websock/detail/report_limiter.hpp"
#include "websock/detail/slab.hpp"
#include "websock/detail/socket.hpp"
#include "websock/detail/thread_rest.hpp"
#include "websock/detail/transport.hpp"
#include "websock/server.hpp"

namespace websock::detail {

/// What other threads hand one event loop (Engine::EventLoop): the ids of its clients woken
/// by a send, a close or an HTTP answer from another thread, and the sockets the accepting
/// loop gave it. One eventfd per loop, not per client, so a connection costs one descriptor.
/// Owned by ServerCore and never destroyed before it, since a Client handle kept by the
/// user may still wake its loop while serve_forever() returns.
struct LoopInbox {
    Waker waker;
    std::mutex mutex;
    std::vector<std::uint64_t> woken;  // (guarded)
    std::vector<Fd> sockets;           // accepted by loop 0 for this loop (guarded)
    // A client that could not be listed (no memory) sets this instead: the loop then looks
    // at every client.
    std::atomic<bool> wake_everyone{false};

    void wake_client(std::uint64_t client_id) noexcept {
        bool first = false;
        try {
            std::lock_guard lock(mutex);
            first = woken.empty() && sockets.empty();
            woken.push_back(client_id);
        } catch (...) {
            wake_everyone.store(true);
            first = true;
        }
        if (first) waker.wake();
    }
    /// False when there is no memory to list it (the caller still owns the socket).
    bool hand_socket(Fd& socket) noexcept {
        bool first = false;
        try {
            std::lock_guard lock(mutex);
            first = woken.empty() && sockets.empty();
            sockets.push_back(std::move(socket));
        } catch (...) {
            return false;
        }
        if (first) waker.wake();
        return true;
    }
};

/// What the client's own thread and every other thread share about one connection.
/// Everything mutable is either atomic or guarded by `mutex`; the socket itself belongs to
/// the client thread alone.
struct ClientCore {
    ServerCore* server = nullptr;  // outlives every session thread (joined before it goes)
    Client* self = nullptr;        // the handle that owns this core
    std::uint64_t id = 0;
    std::string peer;
    // The upgrade request, packed (packed_request.hpp: a fifth of an HttpRequest's memory,
    // which matters for idle connections). The driver packs it before the connection opens
    // and sets request_packed; upgrade_request() (Client::request()) unpacks it on its first
    // call, from any thread, and keeps that copy instead.
    std::basic_string<char, std::char_traits<char>, SlabAllocator<char>> packed_request;  // kept for life: in the slab
    std::atomic<bool> request_packed{false};
    std::once_flag request_unpacked;

    /// What few connections use (an unpacked request, a subprotocol, an extension, a close
    /// asked for from outside, an asynchronous HTTP answer), apart and made on first use:
    /// inline, it cost every idle connection ~170 bytes (issue 12).
    struct Rare {
        std::unique_ptr<HttpRequest> request;  // set once, by upgrade_request()
        std::string subprotocol;               // set before the connection opens
        // The negotiated extension's outgoing side (permessage-deflate: the compressor), set
        // before the connection opens and then used under `mutex` by whichever thread sends,
        // so that messages are encoded in queue order.
        std::unique_ptr<Extension> extension;
        std::string encode_scratch;                                      // (guarded)
        std::optional<std::pair<CloseCode, std::string>> close_request;  // (guarded)
        // A plain HTTP request handed to on_http_request_async: which one waits (numbered
        // per connection from 1; 0 for none), and its serialised answer once a responder gave it.
        std::uint64_t http_awaited = 0;          // (guarded)
        std::optional<std::string> http_answer;  // (guarded)
        bool http_answer_closes = false;  // that answer said "Connection: close": close after it (guarded)
    };
    /// The rare part, made now if it was not (any thread). Throws std::bad_alloc.
    Rare& rare() {
        if (Rare* made = rare_.load(std::memory_order_acquire)) return *made;
        auto fresh = std::make_unique<Rare>();
        Rare* expected = nullptr;
        if (rare_.compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel)) return *fresh.release();
        return *expected;  // another thread made it first
    }
    /// The rare part if it was made, else null (any thread).
    Rare* rare_if_made() const noexcept { return rare_.load(std::memory_order_acquire); }
    /// The negotiated extension's outgoing side, or null (see Rare::extension).
    Extension* extension() const noexcept {
        const Rare* made = rare_if_made();
        return made != nullptr ? made->extension.get() : nullptr;
    }
    /// A close asked for by another thread or by the queue's limit is waiting (under `mutex`).
    bool close_requested() const noexcept {
        const Rare* made = rare_if_made();
        return close_for_full_queue || (made != nullptr && made->close_request.has_value());
    }
    ~ClientCore() { delete rare_.load(std::memory_order_acquire); }

    std::any user_data;
    std::thread::id owner;  // the client thread: sends from it need no wake-up
    // Thread-per-client engine: wakes the client thread's poll(). The event loop gives its
    // clients none: they are woken through their loop's inbox, so that a connection costs
    // one descriptor.
    Waker waker{Waker::NoDescriptor{}};
    LoopInbox* loop = nullptr;  // event loop: the loop that runs this client (set before it is shared)

    std::size_t max_queue_bytes = 0;
    QueueFullPolicy policy = QueueFullPolicy::Close;

    mutable std::mutex mutex;
    std::string queue;                    // encoded frames waiting for the client thread (guarded)
    bool accepting = true;                // false once closing: later sends get Closed (guarded)
    // The queue's limit (QueueFullPolicy::Close) asks for a 1008 close; kept apart from
    // Rare::close_request so that asking allocates nothing (guarded).
    bool close_for_full_queue = false;

    std::atomic<std::size_t> writing_bytes{0};  // taken from the queue, not yet written
    std::atomic<std::size_t> queued_bytes{0};   // queue.size(), readable without the lock
    std::atomic<bool> wake_pending{false};
    std::atomic<bool> open{false};   // between on_connection_open and on_connection_close
    std::atomic<bool> abort{false};  // stop now, without a close handshake (shutdown deadline)
    std::atomic<std::uint8_t> writer{0};  // who writes to the socket: see "direct sends" below

    // Thread-per-client engine, plain TCP: direct sends. A send from another thread to a
    // client whose thread has nothing to write goes straight to the socket, so that thread,
    // asleep in poll() waiting for input, is not woken for it (a wake-up and a context
    // switch are most of this engine's cost per message). One writer per socket at a time:
    // the client thread, or one sender, holds `writer`. The client thread holds it while it
    // has bytes it has not written, so a direct send never overtakes queued bytes; a sender
    // that finds it held queues as before. docs/design.md, "Direct sends".
    static constexpr std::uint8_t kDirectWriter = 1;  ///< a sender on another thread writes
    static constexpr std::uint8_t kOwnerWriter = 2;   ///< the client thread writes, or has bytes left
    static constexpr std::uint8_t kOwnerWaits = 4;    ///< the client thread wants to write: wake it after
    // (`writer` itself sits with the flags above, in what would be padding.)
    // The transport direct sends write to: set (guarded) by the client thread while the
    // connection is open and takes them; null before, once closing, and before the socket
    // is closed (the client thread then waits for a direct write still running).
    Transport* direct_transport = nullptr;
    // (guarded) Bytes at the front of `queue` that finish a frame a direct send wrote in part:
    // dropping the queue (a full queue's policy) keeps them, or the peer would read the next
    // frame as the rest of that one. Zero once the client thread has taken the queue.
    std::size_t queue_committed = 0;
    /// Under `mutex`: empty the queue, but for a frame's rest that must still go out.
    void drop_queued_locked() {
        queue.resize(queue_committed);
        set_queued_bytes(queue.size());
    }

    // ---- the server's outbound budget (ServerOptions::max_total_outbound_bytes) ----
    /// What of a client's backlog counts against the server's budget: the bytes past the
    /// first kUncountedBacklog of each counter. A client that keeps up stays under it, so its
    /// sends never touch the server-wide counter.
    static constexpr std::size_t kUncountedBacklog = 32 * 1024;
    /// Set queued_bytes (under `mutex`) or writing_bytes (by the thread that writes), and
    /// carry the change into the server's total. Each counter has one writer at a time, so
    /// a load and a store keep the total exact.
    void set_queued_bytes(std::size_t bytes) noexcept { publish_backlog(queued_bytes, bytes); }
    void set_writing_bytes(std::size_t bytes) noexcept { publish_backlog(writing_bytes, bytes); }
    enum class OverLimit : std::uint8_t { No, ClientQueue, ServerBudget };
    /// Under `mutex`: would `adding` more bytes pass this client's queue limit, or, for a
    /// client that is behind by more than kUncountedBacklog, the server's budget?
    OverLimit over_limit_locked(std::size_t adding) const noexcept;
    /// For reports: why a send was refused ("outbound queue over N bytes", ...).
    std::string over_limit_text(OverLimit why) const;

    void publish_backlog(std::atomic<std::size_t>& counter, std::size_t bytes) noexcept;

    /// Under `mutex`, on a thread other than the owner: take the socket for a direct send of
    /// `bytes` (a whole frame), when direct sends are on, the client accepts sends and
    /// nothing waits in the queue. The transport to write to, or null: queue instead.
    Transport* claim_direct_locked(std::size_t bytes) noexcept;
    /// After claim_direct_locked(), without the lock: write `header` then `payload`; what the
    /// socket did not take goes to the front of the queue (ahead of sends queued meanwhile)
    /// and the owner is woken to write it. Releases the claim. Never throws.
    void write_direct(Transport& transport, std::string_view header, std::string_view payload) noexcept;
    /// The client thread, before it writes: true once it holds the socket; false (and
    /// kOwnerWaits set) while a direct send writes, which wakes it when done.
    bool claim_for_owner() noexcept {
        std::uint8_t state = writer.load(std::memory_order_acquire);
        for (;;) {
            if ((state & kOwnerWriter) != 0) return true;
            const std::uint8_t wanted = (state & kDirectWriter) != 0 ? (state | kOwnerWaits) : kOwnerWriter;
            if (writer.compare_exchange_weak(state, wanted, std::memory_order_acq_rel, std::memory_order_acquire))
                return wanted == kOwnerWriter;
        }
    }
    /// The client thread has written everything it had: senders may write directly again.
    void release_for_owner() noexcept { writer.store(0, std::memory_order_release); }

    // Event-loop engine only: the loop thread owns every client; a send made on it marks
    // the client here instead of writing an eventfd, and the loop flushes marked clients
    // after each batch of events. Both fields are touched by the loop thread alone.
    std::vector<ClientCore*>* loop_dirty = nullptr;
    bool dirty_marked = false;

    std::atomic<Rare*> rare_{nullptr};  // see rare()

    /// Made only inside a client block (ServerCore::make_client), which also holds the Client
    /// and the shared_ptr's control block in one slab slot: the `delete` in Client's
    /// destructor runs the destructor only, and the slot goes back with the control block.
    static void* operator new(std::size_t) = delete;
    static void operator delete(void*) noexcept {}

    /// The upgrade request (Client::request()); empty before the upgrade, or when there is no
    /// memory to unpack it.
    const HttpRequest& upgrade_request() noexcept;
    /// Make the owner look at the queue and requests (from any thread).
    void wake() noexcept;
    /// After queueing: make sure the owner will write it. The owner thread itself flushes
    /// after its callbacks return (thread engine) or after the batch (event loop).
    void notify_sent() noexcept {
        if (std::this_thread::get_id() != owner) {
            wake();
        } else if (loop_dirty != nullptr && !dirty_marked) {
            dirty_marked = true;
            loop_dirty->push_back(this);
        }
    }
    /// Append encoded frames to the queue, applying the limit and its policy.
    SendResult enqueue(std::string_view frame_bytes);
    /// Ask the client thread to start the close handshake.
    void request_close(CloseCode code, std::string_view reason);
    /// A responder for request number `request` of this connection.
    static std::shared_ptr<HttpResponder> make_responder(std::shared_ptr<Client> client, std::uint64_t request,
                                                         bool keep_alive, bool head);
};

/// A client thread of the thread-per-client engine: a pthread started with a chosen stack
/// size (ServerOptions::thread_stack_bytes), which std::thread cannot take. Joinable and
/// movable like a std::thread; the destructor joins a thread nobody joined (never the case
/// in the engine, which joins every one in reap_finished()).
class ClientThread {
public:
    ClientThread() noexcept = default;
    /// Runs `body` on a new thread with `stack_bytes` of stack (0: the system's default;
    /// otherwise raised to PTHREAD_STACK_MIN and rounded up to whole pages). Throws
    /// std::system_error when the thread cannot be started; `body` has then not run.
    ClientThread(std::size_t stack_bytes, std::function<void()> body);
    ClientThread(ClientThread&& other) noexcept
        : handle_(other.handle_), running_(std::exchange(other.running_, false)) {}
    ClientThread& operator=(ClientThread&& other) noexcept {
        if (this != &other) {
            join();
            handle_ = other.handle_;
            running_ = std::exchange(other.running_, false);
        }
        return *this;
    }
    ClientThread(const ClientThread&) = delete;
    ClientThread& operator=(const ClientThread&) = delete;
    ~ClientThread() { join(); }

    bool joinable() const noexcept { return running_; }
    void join() noexcept;  ///< wait for the thread to end (nothing if it is not running)

private:
    pthread_t handle_{};
    bool running_ = false;
};

/// The server's state: options, callbacks, the listening socket and the session registry.
struct ServerCore {
    explicit ServerCore(ServerOptions server_options)
        : options(std::move(server_options)), report_limiter(options.max_error_reports_per_second) {}

    ServerOptions options;
    WebSocketServer::OpenHandler on_open;
    WebSocketServer::DataHandler on_data;
    WebSocketServer::ErrorHandler on_error;
    WebSocketServer::CloseHandler on_close;
    WebSocketServer::DestructHandler on_destruct;
    WebSocketServer::ControlHandler on_ping;
    WebSocketServer::ControlHandler on_pong;
    WebSocketServer::HttpHandler on_http;
    WebSocketServer::AsyncHttpHandler on_http_async;
    WebSocketServer::HandshakeHandler on_handshake;

    Fd listen_fd;
    Fd adopted_fd;  // ServerOptions::listen_fd: owned from construction until listen() takes it
    Fd reserve_fd;  // /dev/null, opened by listen(): given up for a moment to answer EMFILE
    std::shared_ptr<ExtensionFactory> deflate_factory;  // from options.deflate, made by listen(), then only read
    TlsContext tls_context;  // set by listen() when options.tls has a certificate
    std::shared_ptr<void> signal_scope;  // SIGINT/SIGTERM handlers, from listen() to the end of serve_forever()
    std::atomic<std::uint16_t> port{0};
    Waker waker;  // wakes the accept loop (or event loop 0): stop, a finished thread, a signal
    // Event-loop engine: one inbox per loop (options.event_loops), made by the first
    // serve_forever() and kept for the server's life (see LoopInbox).
    std::vector<std::unique_ptr<LoopInbox>> loop_inboxes;
    std::atomic<bool> stopping{false};
    std::atomic<bool> serving{false};

    // ---- zero-downtime restarts (WebSocketServer::pause_accepting, stop(code, reason)) ----
    // pause_accepting()/resume_accepting() step this: odd while a pause is asked for, a new
    // odd value for every pause. The accepting thread copies an odd value it has obeyed (the
    // listener is out, and no accept4() follows) into accept_paused_ack, so a caller can tell
    // that *its* pause holds and not an older one.
    std::atomic<std::uint64_t> accept_control{0};
    std::atomic<std::uint64_t> accept_paused_ack{0};
    /// The pause asked for now (an odd accept_control value), or 0 when none, without
    /// acknowledging it: the event loop acknowledges once the listener is out of epoll.
    std::uint64_t accept_pause_wanted() const noexcept {
        const std::uint64_t control = accept_control.load();
        return (control & 1) != 0 ? control : 0;
    }
    /// The accepting thread's side: true when accepting is paused now (and acknowledged).
    bool accept_pause_requested() noexcept {
        const std::uint64_t control = accept_control.load();
        if ((control & 1) == 0) return false;
        accept_paused_ack.store(control);
        return true;
    }
    /// Close the listening socket at shutdown, under `mutex`: duplicate_listen_socket() may be
    /// reading it on another thread.
    void close_listener() noexcept {
        std::lock_guard lock(mutex);
        listen_fd.reset();
    }
    // false when the listening socket was adopted (ServerOptions::listen_fd) or handed out
    // (duplicate_listen_socket): its unix socket path is then not ours to unlink at the end.
    std::atomic<bool> unlink_socket_path{true};
    /// The close code and reason stop() gives every client (1001 unless stop(code, reason)).
    std::pair<CloseCode, std::string> stop_close() const {
        std::lock_guard lock(mutex);
        return stop_close_;
    }
    std::pair<CloseCode, std::string> stop_close_{CloseCode::GoingAway, "server shutting down"};  // (guarded by mutex)
    /// How long clients get to finish closing once stopping: options.shutdown_timeout, or stop()'s.
    Milliseconds drain_timeout() const {
        std::lock_guard lock(mutex);
        return stop_drain_timeout_.value_or(options.shutdown_timeout);
    }
    std::optional<Milliseconds> stop_drain_timeout_;  // (guarded by mutex)
    std::atomic<std::uint64_t> next_id{1};
    std::atomic<std::size_t> open_count{0};
    // Bytes waiting for slow clients, past each one's first ClientCore::kUncountedBacklog:
    // what ServerOptions::max_total_outbound_bytes bounds (ClientCore::publish_backlog).
    std::atomic<std::size_t> outbound_backlog{0};
    // KiB of messages being received, past each one's first ClientDriver::kUncountedMessage:
    // what ServerOptions::max_total_incoming_message_bytes bounds (ClientDriver::feed).
    std::atomic<std::size_t> incoming_message_kib{0};

    struct Session {
        std::shared_ptr<Client> client;
        ClientThread thread;
    };
    mutable std::mutex mutex;
    // Every live client (guarded): its thread in the thread-per-client engine. Entries live
    // as long as their connections, so they are made in the slab (slab.hpp).
    std::unordered_map<std::uint64_t, Session, std::hash<std::uint64_t>, std::equal_to<std::uint64_t>,
                       SlabAllocator<std::pair<const std::uint64_t, Session>>>
        sessions;
    std::vector<std::uint64_t> finished;                 // threads that ended, to join (guarded)
    std::condition_variable sessions_changed;            // signalled when a thread finishes
    std::condition_variable serve_done;                  // signalled when serve_forever returns

    /// Report an error to the user (at most options.max_error_reports_per_second of each
    /// kind; see ReportLimiter); never throws.
    void report(Client* client, ErrorKind kind, std::string message) noexcept;
    /// Tell the counts of reports held back in seconds that are over (`all`: every count).
    void report_suppressed(bool all = false) noexcept;
    ReportLimiter report_limiter;

    // ---- test seams (test/unit/test_faults*.cpp); empty in every real server ----
    /// Wraps each new connection's transport: a test's transport fails the Nth call.
    std::function<std::unique_ptr<Transport>(std::unique_ptr<Transport>)> wrap_transport;
    /// Replaces accept4() on the listening socket: a descriptor, or -1 with errno set.
    std::function<int(int listen_fd)> accept_hook;
    /// The calls an engine makes to start, which the fault suite can fail.
    enum class StartupCall : std::uint8_t {
        EpollCreate,   ///< epoll_create1 of event loop `index`
        LoopWaker,     ///< the inbox eventfd of event loop `index`
        LoopWatch,     ///< epoll_ctl ADD of event loop `index`'s wakers (its inbox; loop 0's server waker)
        LoopThread,    ///< starting the thread of event loop `index` (1, 2, ...)
        ClientThread,  ///< starting a client's thread (thread per client; `index` counts clients)
        ClientWaker,   ///< a client's eventfd (thread per client; `index` counts clients)
    };
    /// Returns the errno with which that call fails, or 0 to let it run.
    std::function<int(StartupCall call, std::size_t index)> startup_fault;
    int startup_fault_for(StartupCall call, std::size_t index) const {
        return startup_fault ? startup_fault(call, index) : 0;
    }
    std::atomic<std::size_t> client_threads_started{0};  ///< the ClientThread index
    std::atomic<std::size_t> client_wakers_made{0};      ///< the ClientWaker index
    /// The calls an engine makes while serving to change what it watches, and the one that
    /// hands the listener out; the fault suite can fail them (test/faults/test_serving_faults.cpp).
    enum class ServingCall : std::uint8_t {
        WatchClient,        ///< event loop: epoll_ctl ADD of a new connection's socket
        ChangeInterest,     ///< event loop: epoll_ctl MOD of a connection's events (EPOLLOUT on or off)
        WatchListener,      ///< event loop: epoll_ctl ADD of the listener (at start, after a pause)
        UnwatchListener,    ///< event loop: epoll_ctl DEL of the listener (a pause, the shutdown)
        DuplicateListener,  ///< fcntl(F_DUPFD_CLOEXEC) in WebSocketServer::duplicate_listen_socket()
    };
    /// Given the call and how many of that kind came before it, returns the errno with which
    /// it fails, or 0 to let it run.
    std::function<int(ServingCall call, std::size_t index)> serving_fault;
    std::atomic<std::size_t> serving_calls[5]{};  ///< per ServingCall: the index of the next one
    int serving_fault_for(ServingCall call) {
        if (!serving_fault) return 0;
        return serving_fault(call, serving_calls[static_cast<std::size_t>(call)].fetch_add(1));
    }
    static ServerCore& of(WebSocketServer& server) noexcept { return *server.core_; }

    /// What one accept attempt gave.
    enum class AcceptStatus : std::uint8_t {
        Accepted,  ///< `socket` holds a new connection (non-blocking, TCP_NODELAY)
        Empty,     ///< nothing more is waiting
        Answered,  ///< one connection was taken and refused (503) for want of descriptors
        Pause,     ///< out of memory or buffers, or no reserve descriptor: stop accepting a while
    };
    /// Accept one waiting connection. Out of descriptors (EMFILE, ENFILE) the reserve
    /// descriptor is given up for a moment to take the connection and answer 503, so the
    /// backlog drains instead of waking the loop forever (the libev/nginx trick).
    AcceptStatus accept_one(Fd& socket);
    static constexpr auto kAcceptPause = std::chrono::milliseconds(100);

    /// Run a user callback; an exception goes to on_error instead of ending the process.
    template <class Fn, class... Args>
    void invoke(Client* client, const char* name, const Fn& fn, Args&&... args) noexcept {
        if (!fn) return;
        try {
            fn(std::forward<Args>(args)...);
        } catch (const std::exception& e) {
            report(client, ErrorKind::Callback, std::string(name) + " threw: " + e.what());
        } catch (...) {
            report(client, ErrorKind::Callback, std::string(name) + " threw a non-standard exception");
        }
    }

    static ClientCore& core(Client& client) noexcept { return *client.core_; }
    /// A new Client with an empty ClientCore, both and the shared_ptr's control block in one
    /// slab slot (client_block.cpp). Throws std::bad_alloc.
    static std::shared_ptr<Client> make_client();

    /// A Client for an accepted socket, or null when it cannot be made (reported, and the
    /// socket answered with 503).
    std::shared_ptr<Client> new_client(int socket);
    /// Refuse with 503 when too many connections are live; true when refused.
    bool refuse_if_full(int socket);

    // Thread-per-client engine: the read buffers client threads borrow for each batch (made
    // by run_threaded(), before any client thread; kept for the server's life).
    std::unique_ptr<ReadBufferPool> read_buffers;

    void run_threaded();    // Engine::ThreadPerClient: accept loop + one thread per client
    bool run_event_loop();  // Engine::EventLoop: epoll loops run every client; false: loop 0 could not start
    std::unique_ptr<LoopInbox> make_inbox(std::size_t index);  // reports a missing eventfd
    void start_session(Fd socket);  // thread engine: a thread for an accepted socket (or 503)
    void run_session(std::shared_ptr<Client> client, Fd socket);  // body of a client thread
    void session_finished(std::uint64_t id);
    void reap_finished();
};

/// The response says "Connection: close" itself: the server closes the connection after it
/// (RFC 9112 section 9.6), whatever the request asked for.
inline bool response_closes(const HttpResponse& response) {
    for (const auto& [name, value] : response.headers)
        if (iequals(name, "Connection"))
            for (const auto token : split_tokens(value))
                if (iequals(token, "close")) return true;
    return false;
}

inline void ClientCore::wake() noexcept {
    if (wake_pending.exchange(true, std::memory_order_acq_rel)) return;  // already on its way
    if (waker.valid()) waker.wake();
    else if (loop != nullptr) loop->wake_client(id);
}

}  // namespace websock::detail
