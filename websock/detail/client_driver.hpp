// ClientDriver: one server-side connection from accept to close, driven by events and never
// blocking. The thread-per-client engine pumps one driver from its own thread with poll();
// the event-loop engine pumps many from one thread with epoll. Both get identical protocol
// behaviour because both run this class. Internal.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "websock/codec/handshake.hpp"
#include "websock/connection.hpp"
#include "websock/detail/server_core.hpp"
#include "websock/detail/transport.hpp"

namespace websock::detail {

/// Scratch space for recv(): a mapping of its own, page-aligned and untouched until bytes
/// arrive, so a buffer costs address space but not memory until it is used. The event loop
/// owns one per loop. A client thread borrows one from its server's pool (thread_rest.hpp)
/// for each batch and gives it back before it sleeps, so an idle client thread holds none:
/// its own buffer kept the page every read touches resident, about 4 KiB per idle
/// connection (issue 12). Throws std::bad_alloc when it cannot be mapped.
class ReadBuffer {
public:
    explicit ReadBuffer(std::size_t size);  ///< owns a mapping of `size` bytes
    struct Borrowed {};
    /// No storage until lend(): for a client thread, whose buffer comes from a pool.
    ReadBuffer(std::size_t size, Borrowed) noexcept : bytes_(nullptr), size_(size), owned_(false) {}
    ~ReadBuffer();
    ReadBuffer(const ReadBuffer&) = delete;
    ReadBuffer& operator=(const ReadBuffer&) = delete;
    std::uint8_t* data() noexcept { return bytes_; }
    std::size_t size() const noexcept { return size_; }
    /// Borrowed only: use `bytes` (size() of them) until take_back(). No driver keeps bytes
    /// in the buffer between events, so it may change between any two of them.
    void lend(std::uint8_t* bytes) noexcept { bytes_ = bytes; }
    std::uint8_t* take_back() noexcept { return std::exchange(bytes_, nullptr); }

private:
    std::uint8_t* bytes_;
    std::size_t size_;
    bool owned_ = true;
};

class ClientDriver final : public ConnectionHandler {
public:
    using Clock = std::chrono::steady_clock;

    /// `read_buffer` is scratch space for recv(); it may be shared by every driver of one
    /// engine thread, since no driver keeps bytes in it between events.
    ClientDriver(ServerCore& server, std::shared_ptr<Client> client, Fd socket, ReadBuffer& read_buffer);
    ~ClientDriver() override;
    ClientDriver(const ClientDriver&) = delete;
    ClientDriver& operator=(const ClientDriver&) = delete;
    // It lives as long as its connection: in the slab (slab.hpp), away from the handshakes' heap.
    static void* operator new(std::size_t bytes) { return slab_allocate(bytes); }
    static void operator delete(void* driver, std::size_t bytes) noexcept { slab_deallocate(driver, bytes); }

    // ---- events, from the engine that owns this driver ----
    void on_readable();  ///< the socket is readable (or hung up)
    void on_writable();  ///< the socket takes more bytes
    void on_wake();      ///< another thread queued frames or asked for a close
    void on_output_ready() { after_io(); }  ///< the engine's own thread queued frames
    void on_tick(Clock::time_point now);  ///< deadlines: handshake, idle ping, pong, close
    void on_server_stop();  ///< the server is stopping: refuse or close with 1001
    void abort();           ///< cut the connection now, no close handshake
    void on_exception(const std::exception& error);  ///< an event handler threw (out of memory)

    // ---- what the engine needs to know ----
    int fd() const noexcept { return socket_.get(); }
    bool wants_read() const noexcept;
    bool wants_write() const noexcept { return write_offset_ < write_buffer_.size() || io_->wants_write(); }
    Clock::time_point deadline() const noexcept;  ///< the next on_tick that matters
    bool finished() const noexcept { return phase_ == Phase::Done; }
    /// When the last bytes came from the peer: the thread engine tells from it whether a
    /// read after sched_yield() found any.
    Clock::time_point last_heard() const noexcept { return last_heard_; }
    ClientCore& core() noexcept { return core_; }
    /// Let other threads' sends write straight to the socket while this driver has nothing to
    /// write (ClientCore::write_direct; plain TCP only): the thread engine, whose thread
    /// would otherwise be woken for each of them.
    void set_direct_sends(bool direct) noexcept { direct_sends_ = direct; }

    // ---- idle memory: buffers and the Connection are given back once the client is quiet ----
    /// Buffers came into use and the engine has not listed this client yet (mark_release_listed()):
    /// it should call release_if_quiet() now and then until that returns true. The event loop
    /// visits all such clients in one sweep, so that quiet clients cost no wake-up each.
    bool wants_release_visits() const noexcept { return holds_buffers_ && !release_listed_; }
    void mark_release_listed() noexcept { release_listed_ = true; }
    /// If nothing was read or written since the last call, give back the capacity of the write
    /// buffer, the outbound queue and the Connection's buffers, and drop a Connection at rest
    /// (connection() makes a new one when needed). True when nothing is held any more (or the
    /// client is finished): no more visits are needed until wants_release_visits() says so.
    /// A busy client keeps its buffers: no allocation per message.
    /// `known_quiet`: the caller knows the client has been quiet (a client thread whose
    /// poll() timed out), so the mark its last batch left does not count.
    bool release_if_quiet(bool known_quiet = false);
    /// Buffers grown past what ordinary messages need (after a big message or a burst): a
    /// client thread then wakes once its client has been quiet, to give them back
    /// (session.cpp); one without them sleeps with no timer. Owner thread only.
    bool holds_large_buffers() const noexcept;
    /// The connection is open (WebSocket frames flow): the thread engine reads again after
    /// yielding only then.
    bool open() const noexcept { return phase_ == Phase::Open; }

    // ConnectionHandler, called from inside Connection::feed()
    void on_message(std::string_view data, MessageType type) override;
    void on_ping(std::string_view payload) override;
    void on_pong(std::string_view payload) override;

private:
    static constexpr int kReadsPerEvent = 16;  // then yield to other connections
    // A message's first bytes do not count against ServerOptions::max_total_incoming_message_bytes:
    // clients sending ordinary messages never touch the server-wide counter.
    static constexpr std::size_t kUncountedMessage = 64 * 1024;
    /// Carry this client's message in progress into the server's total (0 once it is done).
    void publish_message_held(std::size_t held) noexcept;
    static constexpr std::size_t kMaxPendingHttpBytes = 1 << 20;  // stop reading pipelined requests past this

    enum class Phase : std::uint8_t {
        TlsHandshake,  ///< wss: the TLS handshake, under the same deadline as the upgrade
        Handshake,  ///< reading HTTP requests; answering plain ones
        Open,       ///< WebSocket messages flow (including our side of a close handshake)
        Lingering,  ///< close frames crossed (or the connection failed): TCP half-closed,
                    ///< waiting for the peer's FIN so our last frame is not lost to a reset
        Done,       ///< socket closed, on_connection_close called if it was opened
    };

    void step_tls_handshake();
    void read_handshake();
    codec::HttpRequestParser& parser();  // the request parser, made when needed
    void parse_requests();  // every complete request in the HTTP input
    void take_early_frames();  // once open: feed the frames that followed the upgrade, drop the HTTP state
    void handle_request(codec::HttpRequestParser& parser);
    void answer_http(HttpRequest& request, bool keep_alive);  // a plain request, sync or async
    /// An async handler's answer, once it is given; then, with `resume_parsing`, the
    /// pipelined requests behind it.
    void take_http_answer(bool resume_parsing = true);
    void next_request(bool keep_alive);  // after an answer: read the next request, or close
    HandshakeDecision decide(const HttpRequest& request);  // policy, then the user's hook
    void negotiate_extensions(const HttpRequest& request, HttpHeaders& headers);
    void open_websocket(const std::string& key, const HttpRequest& request, const HttpHeaders& headers);
    /// Read and handle frames; true when the last thing it did was after_io() (so the caller
    /// need not run it again: two more lock round trips per event).
    bool read_frames();
    void feed(std::uint8_t* data, std::size_t size);
    void take_requests();
    bool flush();  // false when the socket failed
    void after_io();
    void end(bool peer_gone);
    void finish();  // close the socket, tell the user
    void refuse(int status, std::string_view reason, const HttpHeaders& headers = {});
    Connection& connection();
    const Connection& connection_state() const noexcept;
    /// Buffers were used: they may hold capacity until release_if_quiet() gives it back.
    void note_buffers_used() noexcept {
        busy_ = true;
        holds_buffers_ = true;
    }

    ServerCore& server_;
    std::shared_ptr<Client> client_;
    ClientCore& core_;
    Fd socket_;
    std::unique_ptr<Transport> transport_;  // plain or TLS, over socket_
    Transport* io_ = nullptr;  // transport_ while the socket lives; closed_transport() after finish()
    ReadBuffer& read_buffer_;
    Phase phase_ = Phase::Handshake;
    bool opened_ = false;  // on_connection_open ran: on_connection_close must run once
    bool counted_ = false;  // counted in server_.open_count
    // KiB of the message in progress counted in server_.incoming_message_kib (see feed()); in
    // what would be padding.
    std::uint32_t counted_message_kib_ = 0;

    // handshake
    // What only the HTTP side uses, made with the first request's bytes and dropped once the
    // connection is open: inline, an open connection kept ~50 bytes of it (issue 12).
    struct HttpState {
        std::unique_ptr<codec::HttpRequestParser> parser;
        std::string input;             // bytes read, not yet parsed
        std::uint64_t requests = 0;    // plain requests handed to on_http_request_async
        Clock::time_point deadline{};  // the awaited answer's (http_response_timeout)
    };
    HttpState& http() {
        if (!http_) http_ = std::make_unique<HttpState>();
        return *http_;
    }
    std::unique_ptr<HttpState> http_;
    Clock::time_point handshake_deadline_{};
    bool close_after_write_ = false;
    bool awaiting_http_ = false;       // the last request handed out has no answer yet
    bool http_keep_alive_ = false;     // ... and will keep the connection open

    // websocket
    // Made on first use, and dropped again while the connection rests (no message or frame in
    // progress, open, no extension: see release_if_quiet()), since a resting Connection is the same
    // as a new one. connection() makes it; connection_state() only asks.
    // In the slab: the Connections a burst makes are dropped together once quiet, and their
    // chunks go back to the system whole, where the heap would keep their room resident.
    struct SlabDelete {
        void operator()(Connection* connection) const noexcept {
            connection->~Connection();
            slab_deallocate(connection, sizeof(Connection));
        }
    };
    std::unique_ptr<Connection, SlabDelete> connection_;
    std::string write_buffer_;
    std::size_t write_offset_ = 0;
    Clock::time_point last_heard_{};
    Clock::time_point ping_sent_{};
    Clock::time_point closing_since_{};
    Clock::time_point linger_deadline_{};
    bool ping_outstanding_ = false;
    bool timed_out_ = false;
    bool failed_loop_ = false;
    bool aborted_ = false;
    bool peer_gone_ = false;
    bool direct_sends_ = false;
    bool parse_held_back_ = false;  // parse_requests() stopped with answers piled up; go on once written
    bool awaiting_writer_ = false;  // flush() found a direct send writing; its wake() brings us back
    bool release_written_ = false;  // give back write_buffer_'s room once it is written (after the 101)
    bool holds_buffers_ = false;    // some buffer may hold capacity
    bool busy_ = false;             // read or wrote since the last release_if_quiet()
    bool release_listed_ = false;   // the engine visits it (mark_release_listed())
};

}  // namespace websock::detail
