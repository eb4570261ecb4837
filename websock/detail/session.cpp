// The thread-per-client engine: the accept loop on the thread of serve_forever(), one thread
// per connection and their bookkeeping, and the body of a client thread, which pumps a
// single ClientDriver with poll() on two descriptors, the socket and the client's eventfd,
// yields its core once before it sleeps, and holds no read buffer while it sleeps.
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "websock/codec/handshake.hpp"
#include "websock/detail/client_driver.hpp"
#include "websock/detail/thread_rest.hpp"

namespace websock::detail {

namespace {

void* run_client_thread(void* body) {
    const std::unique_ptr<std::function<void()>> owned(static_cast<std::function<void()>*>(body));
    (*owned)();  // run_session() catches everything; an escaping exception ends the process, as with std::thread
    return nullptr;
}

// Free read buffers the engine keeps mapped for the next batch (ReadBufferPool): enough for
// the threads that are inside a batch at one time (a core each, and those preempted or
// blocked in a callback meanwhile); one given back beyond these is unmapped. So after big
// messages at most 16 buffers (16 x read_buffer_bytes) stay resident.
constexpr std::size_t kKeptReadBuffers = 16;

// A client thread whose buffers grew past what ordinary messages need (a big message keeps
// up to 4 MiB for the next one: Connection) gives them back once its client has been quiet
// this long, as the event loop's sweep does (event_loop.cpp, kReleaseSweep). Only such a
// thread sleeps with this timer: an idle client with small buffers costs no wake-up.
constexpr auto kQuietRelease = std::chrono::milliseconds(500);

/// The read buffer a client thread holds between poll() returning and its next sleep.
class BorrowedReadBuffer {
public:
    BorrowedReadBuffer(ReadBufferPool& pool) : pool_(pool), buffer_(pool.buffer_bytes(), ReadBuffer::Borrowed{}) {}
    ~BorrowedReadBuffer() { give_back(); }
    BorrowedReadBuffer(const BorrowedReadBuffer&) = delete;
    BorrowedReadBuffer& operator=(const BorrowedReadBuffer&) = delete;
    ReadBuffer& buffer() noexcept { return buffer_; }
    void hold() {  // throws std::bad_alloc
        if (buffer_.data() == nullptr) buffer_.lend(pool_.take());
    }
    void give_back() noexcept { pool_.give(buffer_.take_back()); }

private:
    ReadBufferPool& pool_;
    ReadBuffer buffer_;
};

// After a batch, a client thread gives its core away once (sched_yield) and then reads
// again, before it sleeps in poll(). With many client threads on few cores, the peer's next
// bytes have usually arrived by the time the others had their turn, and a read that finds
// them saves this thread a sleep, a wake-up (an interrupt between cores, dear on a VM) and
// a switch back. A read that finds nothing ends it; so do a wake-up from another thread and
// the stop, which poll() then sees at once. At most this many rounds, then poll() anyway,
// so that deadlines and the eventfd are looked at (measured: docs/benchmarks.md,
// "Thread per client, 2026-12-08").
constexpr int kYieldRounds = 16;

void yield_then_read(ClientDriver& driver, const ClientCore& client_core, BorrowedReadBuffer& read_buffer) {
    for (int round = 0; round < kYieldRounds; ++round) {
        if (!driver.open() || !driver.wants_read() || client_core.wake_pending.load(std::memory_order_relaxed) ||
            client_core.server->stopping.load(std::memory_order_relaxed))
            return;
        const auto heard = driver.last_heard();
        read_buffer.give_back();  // another thread's batch may use it meanwhile
        ::sched_yield();
        read_buffer.hold();
        driver.on_readable();
        if (driver.last_heard() == heard) return;  // nothing came
    }
}

}  // namespace

ClientThread::ClientThread(std::size_t stack_bytes, std::function<void()> body) {
    pthread_attr_t attributes;
    if (const int error = ::pthread_attr_init(&attributes); error != 0)
        throw std::system_error(error, std::generic_category(), "thread attributes");
    const std::unique_ptr<pthread_attr_t, int (*)(pthread_attr_t*)> destroy(&attributes, ::pthread_attr_destroy);
    if (stack_bytes != 0) {
        const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        const auto minimum = static_cast<std::size_t>(PTHREAD_STACK_MIN);
        const std::size_t size = (std::max(stack_bytes, minimum) + page - 1) / page * page;
        if (const int error = ::pthread_attr_setstacksize(&attributes, size); error != 0)
            throw std::system_error(error, std::generic_category(), "thread stack size");
    }
    auto owned = std::make_unique<std::function<void()>>(std::move(body));
    if (const int error = ::pthread_create(&handle_, &attributes, run_client_thread, owned.get()); error != 0)
        throw std::system_error(error, std::generic_category(), "thread");
    owned.release();  // the thread owns it now
    running_ = true;
}

void ClientThread::join() noexcept {
    if (!running_) return;
    ::pthread_join(handle_, nullptr);
    running_ = false;
}

void ServerCore::run_threaded() {
    bool accept_paused = false;  // after EMFILE: retry on a timer rather than spin
    if (!read_buffers)
        read_buffers = std::make_unique<ReadBufferPool>(std::max<std::size_t>(options.read_buffer_bytes, 4096), kKeptReadBuffers);

    while (!stopping.load()) {
        pollfd fds[2] = {{waker.fd(), POLLIN, 0}, {listen_fd.get(), POLLIN, 0}};
        // While reports are held back, wake once a second to tell their count.
        const int idle_timeout = report_limiter.pending() ? 1000 : -1;
        // pause_accepting(): the listener stays out of the poll until resume_accepting().
        const bool paused_by_user = accept_pause_requested();
        const int ready = ::poll(fds, accept_paused || paused_by_user ? 1 : 2,
                                 accept_paused ? static_cast<int>(kAcceptPause.count()) : idle_timeout);
        if (ready < 0 && errno != EINTR) {
            report(nullptr, ErrorKind::Io, fmt::format("poll: {}", std::strerror(errno)));
            break;
        }
        if (fds[0].revents & POLLIN) waker.drain();
        reap_finished();
        report_suppressed();
        if (stopping.load()) break;
        if (paused_by_user || accept_pause_requested()) continue;
        if (!accept_paused && !(fds[1].revents & POLLIN)) continue;
        accept_paused = false;
        for (;;) {  // accept everything that is waiting
            detail::Fd socket;
            const auto status = accept_one(socket);
            if (status == AcceptStatus::Answered) continue;
            if (status == AcceptStatus::Pause) accept_paused = true;
            if (status != AcceptStatus::Accepted) break;
            try {
                start_session(std::move(socket));
            } catch (const std::exception& e) {  // out of memory: this connection only
                report(nullptr, ErrorKind::Limit, fmt::format("cannot take a connection: {}", e.what()));
            }
        }
    }

    // Shutdown: no new connections; every client gets 1001 (or stop()'s code); after the
    // grace period the rest are cut; then every thread is joined.
    close_listener();
    if (!options.unix_socket_path.empty() && unlink_socket_path.load()) ::unlink(options.unix_socket_path.c_str());
    const auto [stop_code, stop_reason] = stop_close();
    std::vector<std::shared_ptr<Client>> everyone;
    {
        std::lock_guard lock(mutex);
        for (const auto& [id, session] : sessions) everyone.push_back(session.client);
    }
    for (const auto& client : everyone) core(*client).request_close(stop_code, stop_reason);
    for (const auto& client : everyone) core(*client).wake();  // also wakes handshaking ones
    everyone.clear();
    const auto drain = drain_timeout();  // (takes `mutex`)
    {
        std::unique_lock lock(mutex);
        const auto deadline = std::chrono::steady_clock::now() + drain;
        sessions_changed.wait_until(lock, deadline, [&] { return sessions.size() == finished.size(); });
        for (auto& [id, session] : sessions) {
            auto& client_core = core(*session.client);
            client_core.abort.store(true);
            client_core.wake();
        }
        // A thread still inside a user callback cannot be cut short; wait for it.
        sessions_changed.wait(lock, [&] { return sessions.size() == finished.size(); });
    }
    reap_finished();
}

void ServerCore::start_session(Fd socket) {
    if (refuse_if_full(socket.get())) return;
    auto client = new_client(socket.get());
    if (!client) return;
    const auto id = client->id();
    std::optional<std::string> failure;  // why the thread could not start
    {
        std::lock_guard lock(mutex);
        auto& session = sessions[id];
        session.client = client;
        try {
            // The thread owns the socket once it runs; until then `socket` does, so a thread
            // that cannot be started leaves nothing open.
            if (const int error = startup_fault_for(StartupCall::ClientThread, client_threads_started.fetch_add(1)))
                throw std::system_error(error, std::generic_category(), "thread");
            session.thread = ClientThread(options.thread_stack_bytes, [this, client, fd = socket.get()]() mutable {
                run_session(std::move(client), detail::Fd(fd));
            });
            socket.release();
        } catch (const std::exception& e) {  // no thread (EAGAIN) or no memory for its body
            sessions.erase(id);
            failure = e.what();
        }
    }
    if (!failure) return;
    // Outside the lock: on_error is user code, and the 503 is a socket write.
    send_all_before(socket.get(), codec::make_handshake_error(503, "server out of threads"), std::chrono::steady_clock::now());
    report(nullptr, ErrorKind::Limit, fmt::format("cannot start a client thread: {}", *failure));
}

void ServerCore::session_finished(std::uint64_t id) {
    {
        std::lock_guard lock(mutex);
        finished.push_back(id);
    }
    sessions_changed.notify_all();
    waker.wake();
}

void ServerCore::reap_finished() {
    std::vector<ClientThread> done;
    {
        std::lock_guard lock(mutex);
        for (const auto id : finished) {
            auto it = sessions.find(id);
            if (it == sessions.end()) continue;
            done.push_back(std::move(it->second.thread));
            sessions.erase(it);
        }
        finished.clear();
    }
    for (auto& thread : done)
        if (thread.joinable()) thread.join();
}

void ServerCore::run_session(std::shared_ptr<Client> client, Fd socket) {
    const auto id = client->id();
    ClientCore& client_core = core(*client);
    client_core.owner = std::this_thread::get_id();  // sends from this thread need no wake-up
    try {
        BorrowedReadBuffer read_buffer(*read_buffers);
        ClientDriver driver(*this, std::move(client), std::move(socket), read_buffer.buffer());
        driver.set_direct_sends(options.direct_sends);
        // Once open, the first sleep drops the stack pages the handshake (TLS, the upgrade,
        // on_connection_open) touched below the frame this thread waits in: up to ~20 KiB
        // that an idle client would otherwise keep (ServerOptions::thread_stack_bytes).
        bool stack_trimmed = false;
        bool stop_seen = false;
        auto last_event = ClientDriver::Clock::now();  // poll() last reported something
        while (!driver.finished()) {
            try {
                read_buffer.hold();
                if (client_core.abort.load()) {
                    driver.abort();
                    break;
                }
                if (!stop_seen && stopping.load()) {
                    stop_seen = true;
                    driver.on_server_stop();
                    continue;
                }
                short events = 0;
                if (driver.wants_read()) events |= POLLIN;
                if (driver.wants_write()) events |= POLLOUT;
                pollfd fds[2] = {{driver.fd(), events, 0}, {client_core.waker.fd(), POLLIN, 0}};
                auto deadline = driver.deadline();
                const bool release_due = driver.holds_large_buffers();
                if (release_due) deadline = std::min(deadline, last_event + kQuietRelease);
                const int timeout =
                    deadline == ClientDriver::Clock::time_point::max() ? -1 : poll_timeout_ms(deadline);
                read_buffer.give_back();  // an idle thread holds no read buffer
                if (!stack_trimmed && driver.open()) {
                    stack_trimmed = true;
                    drop_stack_below_caller(current_stack_range());
                }
                const int ready = ::poll(fds, 2, timeout);
                read_buffer.hold();
                if (ready < 0 && errno != EINTR) {
                    report(client_core.self, ErrorKind::Io, fmt::format("poll: {}", std::strerror(errno)));
                    driver.abort();
                    break;
                }
                if (ready > 0) {
                    if (fds[1].revents & POLLIN) driver.on_wake();
                    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        driver.on_readable();
                        yield_then_read(driver, client_core, read_buffer);
                    }
                    if (fds[0].revents & POLLOUT) driver.on_writable();
                }
                const auto now = ClientDriver::Clock::now();
                if (ready > 0) last_event = now;
                driver.on_tick(now);
                if (ready == 0 && release_due && now >= last_event + kQuietRelease && !driver.finished()) {
                    driver.release_if_quiet(/*known_quiet=*/true);
                    // What is still held (a message in progress, sends queued meanwhile) is
                    // looked at again a period later, not at once.
                    last_event = now;
                }
            } catch (const std::exception& e) {
                driver.on_exception(e);
            }
        }
    } catch (const std::exception& e) {
        report(nullptr, ErrorKind::Io, fmt::format("client {}: {}", id, e.what()));
    }
    session_finished(id);
}

}  // namespace websock::detail
