// RedisBus: see redis_bus.hpp for the design. Locking: mutex_ guards every field shared by
// publish(), stop(), status() and the two threads; each Link's fd_mutex guards only the
// swap of its hiredis context against stop()'s shutdown() of the socket (order: fd_mutex,
// then mutex_). A thread owns its Link's context otherwise: no lock while it talks to Redis,
// and none while the handler or a Done callback runs.
//
// This file: the Redis URL, the public API and connecting or losing a link. The writer thread
// is in redis_bus_writer.cpp, the reader thread in redis_bus_reader.cpp, what they share in
// redis_bus_detail.hpp.
#include "hub/redis_bus.hpp"
#include "hub/redis_bus_detail.hpp"
#include "hub/bus_sequenced_detail.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <mutex>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

namespace hub {

using namespace redis_bus_detail;

namespace {

timeval to_timeval(std::chrono::milliseconds duration) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(duration.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((duration.count() % 1000) * 1000);
    return tv;
}

std::string random_node_id() {
    std::random_device device;
    std::uniform_int_distribution<std::uint64_t> any;
    std::uint64_t high = (static_cast<std::uint64_t>(device()) << 32) ^ device();
    return fmt::format("{:016x}", high ^ any(device));
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<std::string> percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out.push_back(text[i]);
            continue;
        }
        if (i + 2 >= text.size()) return std::nullopt;  // '%' needs two hex digits
        const int high = hex_value(text[i + 1]);
        const int low = hex_value(text[i + 2]);
        if (high < 0 || low < 0) return std::nullopt;
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
    }
    return out;
}

// hiredis takes an array header at its word: "*2147483647" (from a broken or hostile server)
// made Debian 12's hiredis 0.14 calloc 16 GB and, when the link was dropped, walk its 2^31
// slots for 8-14 s, holding the link's fd_mutex, so stop() waited that long. No reply of
// ours comes near this many elements (the largest, a history read, has at most 1,000,000
// entries): a larger header fails the link at once ("Out of memory" from hiredis).
constexpr unsigned long long kMaxReplyArrayElements = 1ULL << 24;

#if HIREDIS_MAJOR >= 1
void bound_reply_arrays(redisContext* context) {
    context->reader->maxelements = kMaxReplyArrayElements;
}
#else
// hiredis 0.14 has no such limit: wrap its createArray (the element count's type is int there).
template <typename Count>
struct BoundedArrays {
    static inline void* (*original)(const redisReadTask*, Count) = nullptr;
    static void* create(const redisReadTask* task, Count elements) {
        if (static_cast<unsigned long long>(elements) > kMaxReplyArrayElements) return nullptr;
        return original(task, elements);
    }
};

template <typename Count>
void wrap_create_array(redisReplyObjectFunctions& functions, void* (*original)(const redisReadTask*, Count)) {
    BoundedArrays<Count>::original = original;
    functions.createArray = &BoundedArrays<Count>::create;
}

void bound_reply_arrays(redisContext* context) {
    // Every context starts with hiredis' own (static) functions: copy them once, swap createArray.
    static redisReplyObjectFunctions bounded;
    static std::once_flag once;
    std::call_once(once, [&] {
        bounded = *context->reader->fn;
        wrap_create_array(bounded, context->reader->fn->createArray);
    });
    context->reader->fn = &bounded;
}
#endif

}  // namespace

std::optional<RedisOptions> parse_redis_url(std::string_view url) {
    constexpr std::string_view scheme = "redis://";
    if (url.size() < scheme.size()) return std::nullopt;
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(url[i])) != scheme[i]) return std::nullopt;
    }
    std::string_view rest = url.substr(scheme.size());
    if (rest.find_first_of("?#") != std::string_view::npos) return std::nullopt;

    RedisOptions options;
    // The password may hold '@' or '/' only percent-encoded; the last '@' ends the userinfo.
    const auto slash_before = rest.find('/');
    const auto at = rest.substr(0, slash_before).rfind('@');
    if (at != std::string_view::npos) {
        const std::string_view userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        const auto colon = userinfo.find(':');
        if (colon == std::string_view::npos) return std::nullopt;  // redis://user@host: no password
        auto username = percent_decode(userinfo.substr(0, colon));
        auto password = percent_decode(userinfo.substr(colon + 1));
        if (!username || !password || password->empty()) return std::nullopt;
        options.username = std::move(*username);
        options.password = std::move(*password);
    }

    std::string_view authority = rest;
    std::string_view path;
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
        authority = rest.substr(0, slash);
        path = rest.substr(slash + 1);
    }
    std::string_view host;
    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {  // [IPv6]:port
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = authority.substr(1, close - 1);
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return std::nullopt;
            port_text = after.substr(1);
            if (port_text.empty()) return std::nullopt;
        }
    } else {
        const auto colon = authority.find(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
            if (port_text.empty()) return std::nullopt;
        }
    }
    if (host.empty()) return std::nullopt;
    for (char c : host) {
        const bool allowed = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == ':';
        if (!allowed) return std::nullopt;
    }
    options.host = std::string(host);
    if (!port_text.empty()) {
        unsigned port = 0;
        if (!parse_number(port_text, port) || port == 0 || port > 65535) return std::nullopt;
        options.port = static_cast<std::uint16_t>(port);
    }
    if (!path.empty()) {
        int database = 0;
        if (!parse_number(path, database) || database < 0) return std::nullopt;
        options.database = database;
    }
    return options;
}

// ---- RedisBus -----------------------------------------------------------------------------

RedisBus::RedisBus(RedisOptions options)
    : options_(std::move(options)),
      node_id_(random_node_id()),
      writer_link_(std::make_unique<Link>()),
      reader_link_(std::make_unique<Link>()) {
    writer_link_->role = "writer";
    reader_link_->role = "reader";
    status_.kind = "redis";
    status_.connected = false;
}

RedisBus::~RedisBus() {
    stop();
}

void RedisBus::log(std::string_view line) const {
    if (options_.log) {
        try {
            options_.log(line);
        } catch (...) {
        }
        return;
    }
    fmt::print(stderr, "websock-hub: redis bus: {}\n", line);
}

void RedisBus::start(Handler handler) {
    {
        std::lock_guard lock(mutex_);
        if (started_) throw std::logic_error("RedisBus::start called twice");
        started_ = true;
        handler_ = std::move(handler);
    }
    reader_thread_ = std::thread([this] { reader_loop(); });
    writer_thread_ = std::thread([this] { writer_loop(); });
    // Wait (bounded) for the first connection attempts: once start() returns, the reader is
    // on the stream if Redis is there, so nothing published elsewhere after that is missed,
    // and status() tells the truth.
    const auto bound = options_.connect_timeout + options_.command_timeout + options_.read_block;
    std::unique_lock lock(mutex_);
    first_attempts_.wait_for(lock, bound, [&] { return stopping_ || (reader_tried_ && writer_tried_); });
}

std::string RedisBus::enqueue_publish_locked(Queued item, SequencedDone& done) {
    const std::size_t bytes = item.topic.size() + item.payload.size() + item.stream.size();
    std::string refusal;
    if (stopping_) {
        refusal = "bus stopped";
    } else if (!started_) {
        refusal = "bus not started";
    } else if (outage_) {
        refusal = "redis unavailable: " + status_.last_error;
    } else if (pending_.size() >= options_.max_pending_publishes || pending_bytes_ + bytes > options_.max_pending_bytes) {
        refusal = "redis bus overloaded: too many publishes pending";
    }
    if (!refusal.empty()) {
        ++status_.failed;
        return refusal;
    }
    item.seq = next_seq_++;
    Pending& pending = pending_[item.seq];
    pending.done = std::move(done);
    pending.bytes = bytes;
    pending_bytes_ += bytes;
    queue_.push_back(std::move(item));
    return {};
}

void RedisBus::publish(std::string topic, std::string payload, Done done) {
    SequencedDone wrapped;
    if (done) {
        wrapped = [done = std::move(done)](bool ok, std::string_view error, const SequencedMessage&) { done(ok, error); };
    }
    Queued item;
    item.topic = std::move(topic);
    item.payload = std::move(payload);
    submit_publish(std::move(item), std::move(wrapped));
}

void RedisBus::submit_publish(Queued item, SequencedDone done) {
    std::string refusal;
    {
        std::lock_guard lock(mutex_);
        refusal = enqueue_publish_locked(std::move(item), done);
    }
    if (refusal.empty()) {
        wake_writer_.notify_one();
        return;
    }
    refuse_publish(std::move(done), std::move(refusal));
}

void RedisBus::refuse_publish(SequencedDone done, std::string reason) {
    std::vector<Outcome> outcome;
    outcome.push_back(Outcome{std::move(done), false, std::move(reason)});
    fire(outcome);
}

void RedisBus::set_gap_handler(GapHandler handler) {
    std::lock_guard lock(mutex_);
    if (!started_) gap_handler_ = std::move(handler);
}

void RedisBus::set_history_limits(HistoryLimits limits) {
    std::lock_guard lock(mutex_);
    history_limits_ = limits;
}

void RedisBus::publish_sequenced(std::string topic, std::string stream, std::string payload, SequencedDone done) {
    if (!bus_sequenced_detail::valid_stream_name(stream)) {
        refuse_publish(std::move(done), "invalid stream name (1 to 1024 bytes, no NUL)");
        return;
    }
    Queued item;
    item.kind = Queued::Kind::sequenced;
    item.topic = std::move(topic);
    item.payload = std::move(payload);
    item.stream = std::move(stream);
    submit_publish(std::move(item), std::move(done));
}

void RedisBus::read_history(std::string stream, std::uint64_t after, std::size_t max_messages, HistoryDone done) {
    std::string refusal;
    if (!bus_sequenced_detail::valid_stream_name(stream)) {
        refusal = "invalid stream name (1 to 1024 bytes, no NUL)";
    } else {
        std::lock_guard lock(mutex_);
        if (stopping_) {
            refusal = "bus stopped";
        } else if (!started_) {
            refusal = "bus not started";
        } else if (outage_) {
            refusal = "redis unavailable: " + status_.last_error;
        } else if (queued_reads_ >= options_.max_pending_publishes) {
            refusal = "redis bus overloaded: too many history reads queued";
        } else {
            Queued item;
            item.kind = Queued::Kind::read;
            item.stream = std::move(stream);
            item.after = after;
            item.max_messages = max_messages;
            item.history_done = std::move(done);
            queue_.push_back(std::move(item));
            ++queued_reads_;
        }
    }
    if (!refusal.empty()) {
        fire_read(done, HistoryRead{false, std::move(refusal), {}, 0, 0, {}});
        return;
    }
    wake_writer_.notify_one();
}

std::vector<Bus::HistoryDone> RedisBus::take_queued_reads_locked() {
    std::vector<HistoryDone> reads;
    for (auto it = queue_.begin(); it != queue_.end();) {
        if (it->kind == Queued::Kind::read) {
            reads.push_back(std::move(it->history_done));
            it = queue_.erase(it);
        } else {
            ++it;
        }
    }
    queued_reads_ = 0;
    return reads;
}

void RedisBus::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;  // a second stop() finds nothing left to join or answer
    }
    wake_writer_.notify_all();
    wake_backoff_.notify_all();
    first_attempts_.notify_all();
    for (Link* link : {reader_link_.get(), writer_link_.get()}) {
        std::lock_guard fd_lock(link->fd_mutex);
        if (link->context && link->context->fd >= 0) ::shutdown(link->context->fd, SHUT_RDWR);
    }
    const auto self = std::this_thread::get_id();
    for (std::thread* thread : {&reader_thread_, &writer_thread_}) {
        // Called from the bus's own thread (a handler or Done): that thread ends after it
        // returns; the destructor joins it.
        if (thread->joinable() && thread->get_id() != self) thread->join();
    }
    std::vector<Outcome> outcomes;
    std::vector<HistoryDone> reads;
    {
        std::lock_guard lock(mutex_);
        for (auto& [seq, pending] : pending_) {
            outcomes.push_back(Outcome{std::move(pending.done), false, "bus stopped"});
            ++status_.failed;
        }
        pending_.clear();
        pending_bytes_ = 0;
        reads = take_queued_reads_locked();
        queue_.clear();
        writer_up_ = reader_up_ = false;
        status_.connected = false;
    }
    fire(outcomes);
    for (auto& read : reads) fire_read(read, HistoryRead{false, "bus stopped", {}, 0, 0, {}});
}

BusStatus RedisBus::status() const {
    std::lock_guard lock(mutex_);
    return status_;
}

// ---- connections ----------------------------------------------------------------------------

bool RedisBus::wait_backoff(Link& link) {
    std::unique_lock lock(mutex_);
    while (!stopping_ && Clock::now() < link.next_attempt) {
        // Wake at least every 100 ms to expire publishes that wait for their own delivery.
        const auto slice = std::min(link.next_attempt, Clock::now() + std::chrono::milliseconds(100));
        wake_backoff_.wait_until(lock, slice, [&] { return stopping_; });
        if (stopping_) break;
        lock.unlock();
        sweep_timeouts();
        lock.lock();
    }
    return !stopping_;
}

bool RedisBus::connect_link(Link& link, const char* role) {
    redisContext* context = redisConnectWithTimeout(options_.host.c_str(), options_.port, to_timeval(options_.connect_timeout));
    std::string error;
    if (!context) {
        error = "cannot allocate a connection";
    } else if (context->err) {
        error = context->errstr;
    } else {
        bound_reply_arrays(context);
        // The reader blocks for read_block inside XREAD: its socket timeout must be longer.
        const auto timeout = link.role == std::string_view("reader") ? options_.read_block + options_.command_timeout
                                                                     : options_.command_timeout;
        redisSetTimeout(context, to_timeval(timeout));
        redisEnableKeepAlive(context);
        if (!options_.password.empty()) {
            std::vector<std::string_view> args{"AUTH"};
            if (!options_.username.empty()) args.push_back(options_.username);
            args.push_back(options_.password);
            ReplyPtr reply = command(context, args);
            if (!reply) error = context->errstr;
            else if (reply->type == REDIS_REPLY_ERROR) error = fmt::format("AUTH refused: {}", reply_text(reply.get()));
        }
        if (error.empty() && options_.database != 0) {
            const std::string database = std::to_string(options_.database);
            ReplyPtr reply = command(context, {"SELECT", database});
            if (!reply) error = context->errstr;
            else if (reply->type == REDIS_REPLY_ERROR) error = fmt::format("SELECT refused: {}", reply_text(reply.get()));
        }
    }
    if (!error.empty()) {
        if (context) redisFree(context);
        link_lost(link, role, error);
        return false;
    }
    bool stopping = false;
    {
        std::lock_guard fd_lock(link.fd_mutex);
        link.context = context;
        std::lock_guard lock(mutex_);
        stopping = stopping_;
    }
    if (stopping) return false;  // stop() came during the connect; the loop ends next
    link.backoff = std::chrono::milliseconds(0);
    return true;
}

void RedisBus::link_lost(Link& link, const char* role, const std::string& error) {
    {
        std::lock_guard fd_lock(link.fd_mutex);
        if (link.context) redisFree(link.context);
        link.context = nullptr;
    }
    // Back off: the first retry after a working link broke comes soon; each failure doubles.
    link.backoff = link.backoff.count() == 0 ? options_.reconnect_min : std::min(options_.reconnect_max, link.backoff * 2);
    link.next_attempt = Clock::now() + link.backoff;

    std::vector<Outcome> outcomes;
    std::vector<HistoryDone> reads;
    std::string reason;
    std::vector<std::string> lines;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        (&link == writer_link_.get() ? writer_up_ : reader_up_) = false;
        const bool was_healthy = status_.last_error.empty();
        status_.last_error = fmt::format("{} {}:{}: {}", role, options_.host, options_.port, error);
        if (was_healthy || !outage_) lines.push_back(fmt::format("connection lost or refused ({}); retrying with back-off", status_.last_error));
        outage_ = true;
        // Publishes still queued would only wait for the outage to end: answer them now.
        reason = "redis unavailable: " + status_.last_error;
        reads = take_queued_reads_locked();
        for (const Queued& queued : queue_) {
            auto it = pending_.find(queued.seq);
            if (it == pending_.end()) continue;
            outcomes.push_back(Outcome{std::move(it->second.done), false, reason});
            pending_bytes_ -= it->second.bytes;
            pending_.erase(it);
            ++status_.failed;
        }
        queue_.clear();
        update_connected_locked(lines);
    }
    for (const auto& line : lines) log(line);
    fire(outcomes);
    for (auto& read : reads) fire_read(read, HistoryRead{false, reason, {}, 0, 0, {}});
}

void RedisBus::update_connected_locked(std::vector<std::string>& log_lines) {
    const bool now = writer_up_ && reader_up_;
    if (now && !status_.connected) {
        if (ever_connected_) {
            ++status_.reconnects;
            log_lines.push_back(fmt::format("reconnected to {}:{} (stream '{}')", options_.host, options_.port, options_.stream_key));
        } else {
            log_lines.push_back(fmt::format("connected to {}:{} (stream '{}', node {})", options_.host, options_.port,
                                            options_.stream_key, node_id_));
        }
        ever_connected_ = true;
        outage_ = false;
        status_.last_error.clear();
    }
    status_.connected = now;
}

}  // namespace hub
