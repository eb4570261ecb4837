// The event-loop engine: epoll loops (options.event_loops; the first on the thread of
// serve_forever()) run every client through the same ClientDriver the thread-per-client
// engine uses. Loop 0 accepts and hands each new connection to the loops in turn; a
// connection then lives on its loop. Sockets and
// the clients' eventfds are level-triggered. Each client's next deadline (handshake, idle
// ping, pong, close, linger) sits in a min-heap, so the loop sleeps until the earliest one
// and an idle client costs nothing until its own deadline comes.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <new>
#include <queue>
#include <unordered_map>

#include <fmt/format.h>

#include "websock/detail/client_driver.hpp"

namespace websock::detail {
namespace {

using Clock = std::chrono::steady_clock;

// epoll data: a client's socket carries its id (ids start at 1 and grow); the listening
// socket, the server's waker and the loop's inbox the tags below, out of the ids' way. A
// client has no descriptor of its own besides its socket: other threads wake it through its
// loop's inbox (LoopInbox).
constexpr std::uint64_t kListenTag = ~std::uint64_t{0};
constexpr std::uint64_t kServerWakerTag = ~std::uint64_t{0} - 1;
constexpr std::uint64_t kInboxTag = ~std::uint64_t{0} - 2;
// Housekeeping (a paused listener, held-back error counts, the shutdown) runs this often,
// and only while there is some.
constexpr auto kTick = std::chrono::milliseconds(50);
constexpr int kAcceptsPerEvent = 64;  // then serve the clients already in: a flood cannot starve them
// A client whose buffers grew (a message, the handshake's answer) and that has been quiet
// since gives them back (ClientDriver::release_if_quiet()). The loop visits every such client
// in one sweep this often, while there are any: one wake-up for all of them, none for a
// client with nothing held, and a busy client is only asked, so it keeps its buffers.
constexpr auto kReleaseSweep = std::chrono::milliseconds(500);
constexpr std::size_t kKeptTouchedCapacity = 1024;  // clients; more than one batch of events touches

// 32 bytes, as many as the clients: its id is the map's key and the core's.
struct LoopClient {
    std::unique_ptr<ClientDriver> driver;
    std::uint32_t interest = 0;  // what the socket is registered for
    int socket_fd = -1;
    Clock::time_point scheduled = Clock::time_point::max();  // its live entry in the timer heap
    // Listed in touched_ since the last update_touched(): each client is listed once, so
    // touched_ can hold pointers (update_touched() erases an entry only after its one visit).
    bool touched = false;
};

/// One entry of the timer heap. Entries are never removed early: an entry whose time is not
/// its client's `scheduled` any more (the client moved its deadline earlier, or is gone) is
/// skipped when it comes up.
struct Timer {
    Clock::time_point when;
    std::uint64_t id;
    bool operator>(const Timer& other) const noexcept { return when > other.when; }
};

Fd make_epoll(const ServerCore& server, std::size_t index) {
    if (const int error = server.startup_fault_for(ServerCore::StartupCall::EpollCreate, index)) {
        errno = error;
        return Fd();
    }
    return Fd(::epoll_create1(EPOLL_CLOEXEC));
}

class EventLoop {
public:
    /// Loop 0 (given every loop's inbox with set_peers(), its own first) accepts and hands
    /// connections out; the others take theirs from `inbox`.
    EventLoop(ServerCore& server, LoopInbox& inbox, std::size_t index)
        : server_(server),
          inbox_(inbox),
          read_buffer_(std::max<std::size_t>(server.options.read_buffer_bytes, 4096)),
          epoll_(make_epoll(server, index)) {
        if (!epoll_.valid()) {
            server_.report(nullptr, ErrorKind::Io, fmt::format("event loop {}: epoll_create1: {}", index, std::strerror(errno)));
            return;
        }
        // Its wakers (loop 0 also has the server's: stop, signals) are watched from the start;
        // a loop that could not be woken is as good as one that cannot start.
        if (inbox_.waker.valid() && watch_waker(inbox_.waker.fd(), kInboxTag, index) && index == 0)
            watch_waker(server_.waker.fd(), kServerWakerTag, index);
    }
    bool valid() const noexcept { return epoll_.valid() && inbox_.waker.valid(); }
    void set_peers(std::vector<LoopInbox*> peers) { peers_ = std::move(peers); }

    void run() {
        const bool accepting = !peers_.empty();
        if (accepting) {
            user_paused_ = server_.accept_pause_requested();  // paused before serve_forever()
            if (!user_paused_) watch_listener();
        }
        auto next_tick = Clock::now() + kTick;
        Clock::time_point stop_deadline{};
        bool stop_started = false;
        epoll_event events[256];
        for (;;) {
            // Sleep until the earliest client deadline, or the next housekeeping tick when
            // there is housekeeping to do; with neither, until an event comes.
            auto wake_at = timers_.empty() ? Clock::time_point::max() : timers_.top().when;
            if (stop_started || accept_paused_until_ != Clock::time_point{} || pause_unconfirmed_ ||
                server_.report_limiter.pending())
                wake_at = std::min(wake_at, next_tick);
            if (next_release_sweep_ != Clock::time_point{}) wake_at = std::min(wake_at, next_release_sweep_);
            const int timeout = wake_at == Clock::time_point::max() ? -1 : poll_timeout_ms(wake_at);
            const int ready = wait(events, 256, timeout);
            if (ready < 0 && errno != EINTR) {
                server_.report(nullptr, ErrorKind::Io, fmt::format("epoll_wait: {}", std::strerror(errno)));
                server_.stopping.store(true);  // the other loops end too: serve_forever() returns
                server_.waker.wake();
                for (auto* peer : peers_) peer->waker.wake();
                break;
            }
            for (int i = 0; i < ready; ++i) dispatch(events[i]);
            flush_dirty();
            if (accepting && !stop_started) follow_accept_control();

            const auto now = Clock::now();
            if (server_.stopping.load() && !stop_started) {
                // Shutdown: no new connections; every client gets 1001; after the grace
                // period the rest are cut.
                stop_started = true;
                stop_deadline = now + server_.drain_timeout();
                if (accepting) {
                    // (closing it would not do: a listener handed to another process stays in epoll)
                    if (accept_paused_until_ == Clock::time_point{} && !user_paused_) unwatch_listener();
                    server_.close_listener();
                    if (!server_.options.unix_socket_path.empty() && server_.unlink_socket_path.load())
                        ::unlink(server_.options.unix_socket_path.c_str());
                    // stop() and the signal handlers wake only the server's waker
                    for (std::size_t i = 1; i < peers_.size(); ++i) peers_[i]->waker.wake();
                }
                for (auto& [id, client] : clients_) guarded(id, [](ClientDriver& d) { d.on_server_stop(); });
                flush_dirty();
            }
            if (stop_started && now >= stop_deadline) {
                for (auto& [id, client] : clients_) guarded(id, [](ClientDriver& d) { d.abort(); });
                flush_dirty();
            }
            if (stop_started) {  // bounded by shutdown_timeout: every client, every round
                for (auto& [id, client] : clients_) guarded(id, [now](ClientDriver& d) { d.on_tick(now); });
            } else {
                fire_due_timers(now);
            }
            flush_dirty();
            if (next_release_sweep_ != Clock::time_point{} && now >= next_release_sweep_) release_sweep(now);
            if (now >= next_tick) {
                next_tick = now + kTick;
                if (!stop_started) resume_accepting(now);
                server_.report_suppressed();
            }
            update_touched();
            if (stop_started && clients_.empty()) break;
        }
        // Whatever is left (an epoll failure) is cut; each driver tells its user.
        for (auto& [id, client] : clients_) guarded(id, [](ClientDriver& d) { d.abort(); });
        touch_all();
        update_touched();
    }

private:
    /// epoll_wait, spinning first for options.busy_poll after the last events (see there).
    int wait(epoll_event* events, int capacity, int timeout) {
        const auto busy_poll = server_.options.busy_poll;
        if (busy_poll.count() > 0 && timeout != 0) {
            const auto spin_until = last_events_ + busy_poll;
            while (Clock::now() < spin_until && !server_.stopping.load(std::memory_order_relaxed)) {
                const int ready = ::epoll_wait(epoll_.get(), events, capacity, 0);
                if (ready != 0) {
                    if (ready > 0) last_events_ = Clock::now();
                    return ready;
                }
            }
        }
        const int ready = ::epoll_wait(epoll_.get(), events, capacity, timeout);
        if (ready > 0) last_events_ = Clock::now();
        return ready;
    }

    /// Watch a waker of this loop, at construction; on failure the loop is not valid().
    bool watch_waker(int fd, std::uint64_t tag, std::size_t index) {
        int error = server_.startup_fault_for(ServerCore::StartupCall::LoopWatch, index);
        if (error == 0) {
            epoll_event event{};
            event.events = EPOLLIN;
            event.data.u64 = tag;
            if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) == 0) return true;
            error = errno;
        }
        server_.report(nullptr, ErrorKind::Io, fmt::format("event loop {}: epoll_ctl: {}", index, std::strerror(error)));
        epoll_.reset();
        return false;
    }

    /// epoll_ctl on this loop's set, through the fault suite's seam (ServerCore::serving_fault).
    int control(int operation, int fd, std::uint32_t events, std::uint64_t tag, ServerCore::ServingCall call) {
        if (const int error = server_.serving_fault_for(call)) {
            errno = error;
            return -1;
        }
        epoll_event event{};
        event.events = events;
        event.data.u64 = tag;
        return ::epoll_ctl(epoll_.get(), operation, fd, operation == EPOLL_CTL_DEL ? nullptr : &event);
    }

    /// Put the listener in epoll. When the kernel refuses (out of memory, or past
    /// fs.epoll.max_user_watches), say so and try again after a pause, as after EMFILE:
    /// a loop that silently stopped accepting would look alive and serve no one new.
    void watch_listener() {
        if (control(EPOLL_CTL_ADD, server_.listen_fd.get(), EPOLLIN, kListenTag, ServerCore::ServingCall::WatchListener) == 0 ||
            errno == EEXIST)
            return;
        server_.report(nullptr, ErrorKind::Io,
                       fmt::format("cannot watch the listening socket: epoll_ctl: {}; trying again in {} ms",
                                   std::strerror(errno), ServerCore::kAcceptPause.count()));
        accept_paused_until_ = Clock::now() + ServerCore::kAcceptPause;
    }

    /// Take the listener out of epoll; false (reported) when it stays in.
    bool unwatch_listener() {
        if (control(EPOLL_CTL_DEL, server_.listen_fd.get(), 0, kListenTag, ServerCore::ServingCall::UnwatchListener) == 0 ||
            errno == ENOENT)
            return true;
        server_.report(nullptr, ErrorKind::Io, fmt::format("cannot stop watching the listening socket: epoll_ctl: {}", std::strerror(errno)));
        return false;
    }

    template <class Fn>
    void guarded(std::uint64_t id, Fn&& fn) {
        auto it = clients_.find(id);
        if (it != clients_.end()) guarded(it->second, std::forward<Fn>(fn));
    }

    /// Run an event on a client (its exceptions end that client only) and list it for
    /// update_touched(). Entries of clients_ stay put until update_touched() erases them.
    template <class Fn>
    void guarded(LoopClient& entry, Fn&& fn) {
        ClientDriver& driver = *entry.driver;
        if (driver.finished()) return;
        try {
            fn(driver);
        } catch (const std::exception& e) {
            driver.on_exception(e);
        }
        touch(entry);
    }

    void touch(LoopClient& entry) {
        if (entry.touched) return;
        touched_.push_back(&entry);
        entry.touched = true;
    }

    void dispatch(const epoll_event& event) {
        const std::uint64_t tag = event.data.u64;
        if (tag == kListenTag) return accept_all();
        if (tag == kServerWakerTag) return server_.waker.drain();  // the loop checks `stopping` after each batch
        if (tag == kInboxTag) return take_inbox();
        const std::uint64_t id = tag;
        const std::uint32_t what = event.events;
        guarded(id, [what](ClientDriver& d) {
            if (what & (EPOLLIN | EPOLLHUP | EPOLLERR)) d.on_readable();
            if ((what & EPOLLOUT) && !d.finished()) d.on_writable();
        });
    }

    /// New connections from loop 0, and clients woken from other threads (a send, a close
    /// request, an HTTP answer).
    void take_inbox() {
        inbox_.waker.drain();  // first: a wake-up after this line fires the waker again
        std::vector<std::uint64_t> ids;
        std::vector<Fd> sockets;
        {
            std::lock_guard lock(inbox_.mutex);
            ids.swap(inbox_.woken);
            sockets.swap(inbox_.sockets);
        }
        for (auto& socket : sockets) adopt_guarded(std::move(socket));
        if (inbox_.wake_everyone.exchange(false)) {
            ids.clear();
            for (const auto& [id, client] : clients_) ids.push_back(id);
        }
        for (const auto id : ids) guarded(id, [](ClientDriver& d) { d.on_wake(); });
    }

    void adopt_guarded(Fd socket) noexcept {
        try {
            adopt(std::move(socket));
        } catch (const std::exception& e) {  // out of memory: this connection only
            server_.report(nullptr, ErrorKind::Limit, fmt::format("cannot take a connection: {}", e.what()));
        }
    }

    /// The loops take new connections in turn, loop 0 included.
    void hand_out(Fd socket) {
        LoopInbox* target = peers_[next_peer_];
        next_peer_ = (next_peer_ + 1) % peers_.size();
        if (target == &inbox_ || !target->hand_socket(socket)) return adopt_guarded(std::move(socket));
    }

    void accept_all() {
        for (int accepted = 0; accepted < kAcceptsPerEvent; ++accepted) {
            Fd socket;
            const auto status = server_.accept_one(socket);
            if (status == ServerCore::AcceptStatus::Answered) continue;
            if (status == ServerCore::AcceptStatus::Pause) {
                // Out of memory or descriptors with no reserve: a level-triggered listener
                // would wake us at once, forever. Leave it out of epoll for a moment. (If
                // even that fails, it was reported: accepting goes on, and fails on.)
                if (unwatch_listener()) accept_paused_until_ = Clock::now() + ServerCore::kAcceptPause;
                return;
            }
            if (status != ServerCore::AcceptStatus::Accepted) return;
            hand_out(std::move(socket));
        }
    }

    /// Put the listener back after a pause (called on every tick).
    void resume_accepting(Clock::time_point now) {
        if (accept_paused_until_ == Clock::time_point{} || now < accept_paused_until_ || !server_.listen_fd.valid()) return;
        accept_paused_until_ = {};
        if (!user_paused_) watch_listener();
    }

    /// WebSocketServer::pause_accepting()/resume_accepting(): take the listener out of epoll
    /// or put it back (after each batch, so a pause is acknowledged with no accept after it).
    /// While an out-of-descriptors pause holds it out, resume_accepting(now) puts it back.
    /// The pause is acknowledged (WebSocketServer::accepting_paused) only once the listener
    /// is out: a restart that hands the socket on must not have this loop accept after it.
    void follow_accept_control() {
        const std::uint64_t pause = server_.accept_pause_wanted();
        pause_unconfirmed_ = false;
        if ((pause != 0) == user_paused_) {
            if (pause != 0) server_.accept_paused_ack.store(pause);  // a new pause, the listener still out
            return;
        }
        if (pause != 0) {
            // Out already when an out-of-descriptors pause holds it; else take it out now,
            // or (reported) leave the pause unacknowledged and try again next round.
            if (accept_paused_until_ == Clock::time_point{} && !unwatch_listener()) {
                pause_unconfirmed_ = true;  // the next tick tries again
                return;
            }
            user_paused_ = true;
            server_.accept_paused_ack.store(pause);
            return;
        }
        user_paused_ = false;
        if (accept_paused_until_ == Clock::time_point{}) watch_listener();
    }

    void adopt(Fd socket) {
        if (server_.refuse_if_full(socket.get())) return;
        auto client = server_.new_client(socket.get());
        if (!client) return;
        const auto id = client->id();
        ClientCore& core = ServerCore::core(*client);
        core.owner = std::this_thread::get_id();
        core.loop = &inbox_;
        const int socket_fd = socket.get();
        // Watched first: a connection the loop cannot watch would never be served, so it is
        // refused now (the socket closes with the client; nothing else is registered yet).
        if (control(EPOLL_CTL_ADD, socket_fd, EPOLLIN, id, ServerCore::ServingCall::WatchClient) != 0) {
            const int error = errno;
            send_all_before(socket_fd, codec::make_handshake_error(503, "server out of resources"), Clock::now());
            server_.report(nullptr, ErrorKind::Limit,
                           fmt::format("{}: cannot watch a new connection: epoll_ctl: {}; refused with 503", core.peer,
                                       std::strerror(error)));
            return;
        }
        struct Undo {  // an allocation below failed: leave no half-registered client behind
            EventLoop& loop;
            std::uint64_t id;
            bool done = false;
            ~Undo() {
                if (done) return;
                loop.clients_.erase(id);
                std::lock_guard lock(loop.server_.mutex);
                loop.server_.sessions.erase(id);
            }
        } undo{*this, id};
        {
            std::lock_guard lock(server_.mutex);
            server_.sessions[id].client = client;  // for clients() and send_all()
        }
        auto& entry = clients_[id];
        entry.socket_fd = socket_fd;
        entry.driver = std::make_unique<ClientDriver>(server_, std::move(client), std::move(socket), read_buffer_);
        entry.interest = EPOLLIN;
        core.loop_dirty = &dirty_;
        undo.done = true;
        schedule(id, entry);  // the handshake deadline
    }

    /// Sends made on this thread marked their clients; write what they queued.
    void flush_dirty() {
        while (!dirty_.empty()) {
            std::vector<ClientCore*> batch;
            batch.swap(dirty_);
            for (ClientCore* core : batch) {
                // Unmarked already: the driver wrote the queue itself since the send (a reply
                // made while reading is written before the next read); nothing is left to do.
                if (!core->dirty_marked) continue;
                core->dirty_marked = false;
                guarded(core->id, [](ClientDriver& d) { d.on_output_ready(); });
            }
        }
    }

    /// on_tick for each client whose deadline has come; update_touched() then schedules
    /// its next one.
    void fire_due_timers(Clock::time_point now) {
        while (!timers_.empty() && timers_.top().when <= now) {
            const Timer timer = timers_.top();
            timers_.pop();
            auto it = clients_.find(timer.id);
            if (it == clients_.end() || it->second.scheduled != timer.when) continue;  // stale
            it->second.scheduled = Clock::time_point::max();
            guarded(timer.id, [now](ClientDriver& d) { d.on_tick(now); });
        }
    }

    /// Keep a heap entry at or before the client's deadline. A deadline that moved later
    /// (activity pushed the idle ping back) keeps its earlier entry: on_tick then finds
    /// nothing due and the client is scheduled anew, one early visit instead of a heap search.
    void schedule(std::uint64_t id, LoopClient& entry) {
        const auto deadline = entry.driver->deadline();
        if (deadline >= entry.scheduled) return;
        entry.scheduled = deadline;
        timers_.push({deadline, id});
        // Stale entries of clients long gone: rebuild before they outnumber the live ones.
        if (timers_.size() > 4 * clients_.size() + 4096) rebuild_timers();
    }

    void rebuild_timers() {
        TimerList live;
        live.reserve(clients_.size());
        for (const auto& [id, entry] : clients_)
            if (entry.scheduled != Clock::time_point::max()) live.push_back({entry.scheduled, id});
        timers_ = decltype(timers_)(std::greater<>(), std::move(live));
    }

    void touch_all() {
        for (auto& [id, client] : clients_) touch(client);
    }

    /// Give back the buffers of the clients quiet since the last sweep (see kReleaseSweep);
    /// the others stay listed for the next one.
    void release_sweep(Clock::time_point now) noexcept {
        std::size_t kept = 0;
        for (const auto id : holding_) {
            bool done = true;  // a client gone needs no more visits
            if (auto it = clients_.find(id); it != clients_.end()) {
                try {
                    done = it->second.driver->release_if_quiet();
                } catch (const std::exception&) {
                    done = false;  // (a lock that failed) try again next time
                }
            }
            if (!done) holding_[kept++] = id;
        }
        holding_.resize(kept);
        if (holding_.empty() && holding_.capacity() > 4096) decltype(holding_)().swap(holding_);
        next_release_sweep_ = holding_.empty() ? Clock::time_point{} : now + kReleaseSweep;
    }

    /// Re-arm or retire every client an event touched.
    void update_touched() {
        std::vector<std::uint64_t> unwatchable;  // epoll_ctl MOD failed: cut below
        for (LoopClient* touched : touched_) {
            LoopClient& entry = *touched;
            entry.touched = false;
            ClientDriver& driver = *entry.driver;
            const std::uint64_t id = driver.core().id;
            if (driver.finished()) {  // its socket is closed, and so gone from epoll
                driver.core().loop_dirty = nullptr;
                {
                    std::lock_guard lock(server_.mutex);
                    server_.sessions.erase(id);
                }
                clients_.erase(id);  // listed once in touched_: no pointer to it is left
                continue;
            }
            schedule(id, entry);
            if (driver.wants_release_visits() && list_for_release(id)) driver.mark_release_listed();
            std::uint32_t interest = 0;
            if (driver.wants_read()) interest |= EPOLLIN;
            if (driver.wants_write()) interest |= EPOLLOUT;
            if (interest != entry.interest) {
                if (control(EPOLL_CTL_MOD, entry.socket_fd, interest, id, ServerCore::ServingCall::ChangeInterest) == 0) {
                    entry.interest = interest;
                } else {
                    // Left as it was, the client could wait forever for an event it never
                    // asked for (EPOLLOUT with frames queued): cut it, and say why.
                    server_.report(driver.core().self, ErrorKind::Io,
                                   fmt::format("client {}: epoll_ctl: {}; the loop cannot watch it, so it is cut", id,
                                               std::strerror(errno)));
                    unwatchable.push_back(id);
                }
            }
        }
        touched_.clear();
        // A batch that touched every client (a mass wake-up, the echo of a burst) leaves room for
        // all of them; kept, it would pin the heap above it and keep freed memory resident.
        if (touched_.capacity() > kKeptTouchedCapacity) std::vector<LoopClient*>().swap(touched_);
        if (unwatchable.empty()) return;
        // Outside the loop above: abort() runs on_connection_close, whose sends touch clients.
        for (const auto id : unwatchable) guarded(id, [](ClientDriver& d) { d.abort(); });
        flush_dirty();
        update_touched();  // retires them (finished), and re-arms whatever their callbacks touched
    }

    bool list_for_release(std::uint64_t id) noexcept {
        try {
            holding_.push_back(id);
        } catch (const std::bad_alloc&) {
            return false;  // no memory: this client keeps its buffers until it is touched again
        }
        if (next_release_sweep_ == Clock::time_point{}) next_release_sweep_ = Clock::now() + kReleaseSweep;
        return true;
    }

    ServerCore& server_;
    LoopInbox& inbox_;
    std::vector<LoopInbox*> peers_;  // loop 0 only: every loop's inbox, in hand-out order
    std::size_t next_peer_ = 0;
    ReadBuffer read_buffer_;  // shared by this loop's clients: no driver keeps bytes in it between events
    Fd epoll_;
    // Entries live as long as their connections: in the slab (slab.hpp).
    std::unordered_map<std::uint64_t, LoopClient, std::hash<std::uint64_t>, std::equal_to<std::uint64_t>,
                       SlabAllocator<std::pair<const std::uint64_t, LoopClient>>>
        clients_;
    std::vector<ClientCore*> dirty_;
    Clock::time_point last_events_{};  // when epoll_wait last returned events (busy_poll)
    Clock::time_point accept_paused_until_{};  // the listener is out of epoll until then
    bool user_paused_ = false;  // out of epoll for pause_accepting()
    bool pause_unconfirmed_ = false;  // pause_accepting() asked, the listener could not be taken out yet
    std::vector<LoopClient*> touched_;  // each at most once (LoopClient::touched)
    // As many as the clients: in the slab's memory, like clients_ (slab.hpp).
    std::vector<std::uint64_t, SlabAllocator<std::uint64_t>> holding_;  // clients whose buffers may hold memory (release_sweep())
    Clock::time_point next_release_sweep_{};  // when release_sweep() runs next; zero: nobody to visit
    using TimerList = std::vector<Timer, SlabAllocator<Timer>>;  // as many as the clients: see holding_
    std::priority_queue<Timer, TimerList, std::greater<>> timers_;
};

}  // namespace

std::unique_ptr<LoopInbox> ServerCore::make_inbox(std::size_t index) {
    auto inbox = std::make_unique<LoopInbox>();
    if (const int error = startup_fault_for(StartupCall::LoopWaker, index)) {
        inbox->waker = Waker(Waker::NoDescriptor{});
        errno = error;
    }
    if (!inbox->waker.valid())
        report(nullptr, ErrorKind::Io, fmt::format("event loop {}: eventfd: {}", index, std::strerror(errno)));
    return inbox;
}

bool ServerCore::run_event_loop() {
    const std::size_t wanted = options.event_loops != 0 ? options.event_loops
                                                         : std::max(1u, std::thread::hardware_concurrency());
    // Inboxes outlive a run (a server may serve again); one without its eventfd is made anew.
    loop_inboxes.resize(std::max(loop_inboxes.size(), wanted));
    // Every loop is made before any runs, so loop 0 hands connections only to loops that
    // could start; one that cannot (no descriptor, no thread) is reported and left out.
    std::vector<std::unique_ptr<EventLoop>> loops;
    for (std::size_t i = 0; i < wanted; ++i) {
        if (!loop_inboxes[i] || !loop_inboxes[i]->waker.valid()) loop_inboxes[i] = make_inbox(i);
        if (!loop_inboxes[i]->waker.valid()) {
            if (i == 0) return false;  // reported; serve_forever() returns false
            report(nullptr, ErrorKind::Limit, fmt::format("event loop {} cannot start; running {}", i, i));
            break;
        }
        auto loop = std::make_unique<EventLoop>(*this, *loop_inboxes[i], i);
        if (!loop->valid()) {
            if (i == 0) return false;  // reported; serve_forever() returns false
            report(nullptr, ErrorKind::Limit, fmt::format("event loop {} cannot start; running {}", i, i));
            break;
        }
        loops.push_back(std::move(loop));
    }
    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < loops.size(); ++i) {
        try {
            if (const int error = startup_fault_for(StartupCall::LoopThread, i))
                throw std::system_error(error, std::generic_category(), "thread");
            threads.emplace_back([loop = loops[i].get()] { loop->run(); });
        } catch (const std::system_error& e) {
            report(nullptr, ErrorKind::Limit, fmt::format("event loop {} cannot start ({}); running {}", i, e.what(), i));
            loops.resize(i);
            break;
        }
    }
    std::vector<LoopInbox*> peers;
    for (std::size_t i = 0; i < loops.size(); ++i) peers.push_back(loop_inboxes[i].get());
    loops[0]->set_peers(std::move(peers));
    loops[0]->run();
    for (auto& thread : threads) thread.join();
    // Connections handed to a loop that had already stopped: never answered, now closed.
    for (auto& inbox : loop_inboxes) {
        if (!inbox) continue;  // past a loop that could not start
        std::lock_guard lock(inbox->mutex);
        inbox->sockets.clear();
        inbox->woken.clear();
    }
    return true;
}

}  // namespace websock::detail
