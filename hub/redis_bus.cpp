// RedisBus: see redis_bus.hpp for the design. Locking: mutex_ guards every field shared by
// publish(), stop(), status() and the two threads; each Link's fd_mutex guards only the
// swap of its hiredis context against stop()'s shutdown() of the socket (order: fd_mutex,
// then mutex_). A thread owns its Link's context otherwise: no lock while it talks to Redis,
// and none while the handler or a Done callback runs.
#include "hub/redis_bus.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

namespace hub {

namespace {

using Clock = std::chrono::steady_clock;

struct ReplyDeleter {
    void operator()(redisReply* reply) const noexcept {
        if (reply) freeReplyObject(reply);
    }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

/// A stream entry id, "<ms>-<seq>", compared numerically (as text "9-0" > "10-0").
struct StreamId {
    std::uint64_t ms = 0;
    std::uint64_t seq = 0;
    auto operator<=>(const StreamId&) const = default;

    static std::optional<StreamId> parse(std::string_view text) {
        const auto dash = text.find('-');
        if (dash == std::string_view::npos) return std::nullopt;
        StreamId id;
        const auto first = std::from_chars(text.data(), text.data() + dash, id.ms);
        const auto second = std::from_chars(text.data() + dash + 1, text.data() + text.size(), id.seq);
        if (first.ec != std::errc{} || first.ptr != text.data() + dash) return std::nullopt;
        if (second.ec != std::errc{} || second.ptr != text.data() + text.size()) return std::nullopt;
        return id;
    }
    std::string str() const { return fmt::format("{}-{}", ms, seq); }
};

std::string_view reply_text(const redisReply* reply) {
    if (!reply || !reply->str) return {};
    return {reply->str, reply->len};
}

bool is_text(const redisReply* reply) {
    return reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS);
}

timeval to_timeval(std::chrono::milliseconds duration) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(duration.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((duration.count() % 1000) * 1000);
    return tv;
}

/// One command as argv, binary-safe (hiredis takes each argument with its length).
ReplyPtr command(redisContext* context, const std::vector<std::string_view>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args.size());
    lengths.reserve(args.size());
    for (auto arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
    }
    return ReplyPtr(static_cast<redisReply*>(
        redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data())));
}

std::string random_node_id() {
    std::random_device device;
    std::uniform_int_distribution<std::uint64_t> any;
    std::uint64_t high = (static_cast<std::uint64_t>(device()) << 32) ^ device();
    return fmt::format("{:016x}", high ^ any(device));
}

/// Our threads block SIGPIPE: a write to a socket Redis has closed must give EPIPE (and a
/// reconnect), not end the process. The pending signal is then discarded.
void block_sigpipe_in_this_thread() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void discard_pending_sigpipe() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    const timespec zero{};
    while (sigtimedwait(&set, nullptr, &zero) == SIGPIPE) {
    }
}

void name_this_thread(const char* name) {
    pthread_setname_np(pthread_self(), name);
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

template <typename Number>
bool parse_number(std::string_view text, Number& out) {
    if (text.empty()) return false;
    const auto result = std::from_chars(text.data(), text.data() + text.size(), out);
    return result.ec == std::errc{} && result.ptr == text.data() + text.size();
}

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

struct RedisBus::Link {
    const char* role = "";
    std::mutex fd_mutex;  ///< held to swap `context` and by stop() to shut its socket
    redisContext* context = nullptr;
    std::chrono::milliseconds backoff{0};  ///< wait before the next attempt; 0 = at once
    Clock::time_point next_attempt{};
    std::string last_id;  ///< reader: the last entry delivered ("" until positioned)

    ~Link() {
        if (context) redisFree(context);
    }
};

namespace {
struct Outcome {
    Bus::Done done;
    bool ok = false;
    std::string error;
};

void fire(std::vector<Outcome>& outcomes) {
    for (auto& outcome : outcomes) {
        if (!outcome.done) continue;
        try {
            outcome.done(outcome.ok, outcome.error);
        } catch (...) {
            // A caller's Done must not end the bus's thread; nothing useful to do with it.
        }
    }
    outcomes.clear();
}
}  // namespace

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

void RedisBus::publish(std::string topic, std::string payload, Done done) {
    std::string refusal;
    {
        std::lock_guard lock(mutex_);
        const std::size_t bytes = topic.size() + payload.size();
        if (stopping_) {
            refusal = "bus stopped";
        } else if (!started_) {
            refusal = "bus not started";
        } else if (outage_) {
            refusal = "redis unavailable: " + status_.last_error;
        } else if (pending_.size() >= options_.max_pending_publishes ||
                   pending_bytes_ + bytes > options_.max_pending_bytes) {
            refusal = "redis bus overloaded: too many publishes pending";
        }
        if (refusal.empty()) {
            const std::uint64_t seq = next_seq_++;
            Pending& pending = pending_[seq];
            pending.done = std::move(done);
            pending.bytes = bytes;
            pending_bytes_ += bytes;
            queue_.push_back(Queued{seq, std::move(topic), std::move(payload)});
        } else {
            ++status_.failed;
        }
    }
    if (!refusal.empty()) {
        std::vector<Outcome> outcome;
        outcome.push_back(Outcome{std::move(done), false, std::move(refusal)});
        fire(outcome);
        return;
    }
    wake_writer_.notify_one();
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
    {
        std::lock_guard lock(mutex_);
        for (auto& [seq, pending] : pending_) {
            outcomes.push_back(Outcome{std::move(pending.done), false, "bus stopped"});
            ++status_.failed;
        }
        pending_.clear();
        pending_bytes_ = 0;
        queue_.clear();
        writer_up_ = reader_up_ = false;
        status_.connected = false;
    }
    fire(outcomes);
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
        const std::string reason = "redis unavailable: " + status_.last_error;
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

// ---- the writer -----------------------------------------------------------------------------

namespace {
/// Whether an idle connection is still open: Redis never speaks unasked, so a readable
/// socket means it closed the connection (restart, timeout). Found before sending, the batch
/// can go on a new connection with no doubt whether Redis took it.
bool idle_connection_is_dead(redisContext* context) {
    pollfd poll_fd{context->fd, POLLIN, 0};
    const int ready = ::poll(&poll_fd, 1, 0);
    return ready != 0;
}
}  // namespace

void RedisBus::writer_loop() {
    name_this_thread("hub-redis-wr");
    block_sigpipe_in_this_thread();
    Link& link = *writer_link_;
    const std::string max_length = std::to_string(options_.stream_max_length);
    std::vector<Queued> batch;
    std::vector<Outcome> outcomes;
    for (;;) {
        if (!link.context) {
            if (!wait_backoff(link)) break;
            const bool ready = connect_link(link, "writer");
            std::vector<std::string> lines;
            {
                std::lock_guard lock(mutex_);
                writer_tried_ = true;
                if (ready) {
                    writer_up_ = true;
                    update_connected_locked(lines);
                }
            }
            first_attempts_.notify_all();
            for (const auto& line : lines) log(line);
            if (!ready) continue;
        }
        {
            std::unique_lock lock(mutex_);
            // Send nothing before the reader is on the stream: our own entry must come after
            // the reader's position, or Done would never see it delivered.
            wake_writer_.wait_for(lock, std::chrono::milliseconds(100),
                                  [&] { return stopping_ || (!queue_.empty() && reader_up_); });
            if (stopping_) break;
            if (reader_up_) {
                const std::size_t count = std::min(queue_.size(), options_.write_batch);
                for (std::size_t i = 0; i < count; ++i) {
                    batch.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
            }
        }
        if (batch.empty()) {
            sweep_timeouts();
            continue;
        }
        if (idle_connection_is_dead(link.context)) {
            // Put the batch back in front, in order, and reconnect at once.
            {
                std::lock_guard lock(mutex_);
                for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
                writer_up_ = false;
                std::vector<std::string> no_lines;  // a quiet reconnect, counted but not logged
                update_connected_locked(no_lines);
            }
            batch.clear();
            std::lock_guard fd_lock(link.fd_mutex);
            redisFree(link.context);
            link.context = nullptr;
            link.next_attempt = Clock::now();
            continue;
        }

        std::vector<std::string> seq_texts;
        seq_texts.reserve(batch.size());
        for (const Queued& item : batch) seq_texts.push_back(std::to_string(item.seq));
        for (std::size_t i = 0; i < batch.size(); ++i) {
            const std::string_view args[] = {"XADD", options_.stream_key, "MAXLEN", "~", max_length, "*",
                                             "t",    batch[i].topic,      "p",      batch[i].payload,
                                             "n",    node_id_,            "s",      seq_texts[i]};
            const char* argv[std::size(args)];
            std::size_t lengths[std::size(args)];
            for (std::size_t a = 0; a < std::size(args); ++a) {
                argv[a] = args[a].data();
                lengths[a] = args[a].size();
            }
            redisAppendCommandArgv(link.context, static_cast<int>(std::size(args)), argv, lengths);
        }
        std::string connection_error;
        std::size_t answered = 0;
        std::vector<std::pair<std::uint64_t, std::string>> refused;  // seq, Redis' error
        std::vector<std::uint64_t> accepted;
        for (; answered < batch.size(); ++answered) {
            void* raw = nullptr;
            if (redisGetReply(link.context, &raw) != REDIS_OK || !raw) {
                connection_error = link.context->errstr[0] ? link.context->errstr : "connection closed";
                break;
            }
            ReplyPtr reply(static_cast<redisReply*>(raw));
            if (reply->type == REDIS_REPLY_ERROR) refused.emplace_back(batch[answered].seq, std::string(reply_text(reply.get())));
            else accepted.push_back(batch[answered].seq);
        }
        discard_pending_sigpipe();
        {
            std::lock_guard lock(mutex_);
            const auto now = Clock::now();
            for (std::uint64_t seq : accepted) {
                ++status_.published;
                auto it = pending_.find(seq);
                if (it == pending_.end()) continue;
                if (it->second.delivered) {
                    outcomes.push_back(Outcome{std::move(it->second.done), true, {}});
                    pending_bytes_ -= it->second.bytes;
                    pending_.erase(it);
                } else {
                    it->second.accepted = true;
                    it->second.deadline = now + options_.delivery_timeout;
                }
            }
            auto refuse = [&](std::uint64_t seq, std::string reason) {
                auto it = pending_.find(seq);
                if (it == pending_.end()) return;
                outcomes.push_back(Outcome{std::move(it->second.done), false, std::move(reason)});
                pending_bytes_ -= it->second.bytes;
                pending_.erase(it);
                ++status_.failed;
            };
            for (auto& [seq, error] : refused) refuse(seq, "redis refused the publish: " + error);
            if (!connection_error.empty()) {
                // Unanswered: Redis may or may not have taken them; the caller hears !ok.
                const std::string reason = stopping_ ? std::string("bus stopped") : "redis unavailable: " + connection_error;
                for (std::size_t i = answered; i < batch.size(); ++i) refuse(batch[i].seq, reason);
            }
        }
        batch.clear();
        fire(outcomes);
        if (!connection_error.empty()) link_lost(link, "writer", connection_error);
        sweep_timeouts();
    }
}

void RedisBus::sweep_timeouts() {
    std::vector<Outcome> outcomes;
    {
        std::lock_guard lock(mutex_);
        const auto now = Clock::now();
        for (auto it = pending_.begin(); it != pending_.end();) {
            if (it->second.accepted && !it->second.delivered && it->second.deadline <= now) {
                outcomes.push_back(Outcome{std::move(it->second.done), false,
                                           fmt::format("redis: published, but not delivered back to this node within {} ms",
                                                       options_.delivery_timeout.count())});
                pending_bytes_ -= it->second.bytes;
                it = pending_.erase(it);
                ++status_.failed;
            } else {
                ++it;
            }
        }
    }
    fire(outcomes);
}

// ---- the reader -----------------------------------------------------------------------------

bool RedisBus::position_reader(Link& link) {
    ReplyPtr reply = command(link.context, {"XINFO", "STREAM", options_.stream_key});
    if (!reply) return false;
    std::optional<StreamId> last_generated;
    std::optional<StreamId> max_deleted;
    if (reply->type == REDIS_REPLY_ERROR) {
        // "ERR no such key": no stream yet (first node, or Redis restarted empty).
        if (reply_text(reply.get()).find("no such key") == std::string_view::npos) {
            link_lost(link, "reader", fmt::format("XINFO STREAM {}: {}", options_.stream_key, reply_text(reply.get())));
            return false;
        }
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        for (std::size_t i = 0; i + 1 < reply->elements; i += 2) {
            const std::string_view field = reply_text(reply->element[i]);
            if (!is_text(reply->element[i + 1])) continue;
            if (field == "last-generated-id") last_generated = StreamId::parse(reply_text(reply->element[i + 1]));
            else if (field == "max-deleted-entry-id") max_deleted = StreamId::parse(reply_text(reply->element[i + 1]));
        }
    }

    const std::optional<StreamId> ours = link.last_id.empty() ? std::nullopt : StreamId::parse(link.last_id);
    std::string line;
    if (!ours) {
        // First start: from the stream's newest entry on ("$", but resolved now, so that an
        // entry added between this and the first XREAD is not missed).
        link.last_id = last_generated ? last_generated->str() : "0-0";
    } else if (!last_generated) {
        if (*ours != StreamId{}) line = fmt::format("stream '{}' is gone (Redis restarted empty?): reading the new one from its start", options_.stream_key);
        link.last_id = "0-0";
    } else if (*last_generated < *ours) {
        // Ids went back: this is another stream than the one we read (Redis restarted, lost
        // its data, and has a new one already). Everything in it is new to this node.
        line = fmt::format("stream '{}' restarted (its last id {} is below ours {}): reading it from its start",
                           options_.stream_key, last_generated->str(), ours->str());
        link.last_id = "0-0";
    } else if (max_deleted && *max_deleted > *ours) {
        line = fmt::format("stream '{}' was trimmed past this node's position ({} > {}) while it was away: some messages were lost here",
                           options_.stream_key, max_deleted->str(), ours->str());
    }
    if (!line.empty()) log(line);
    return true;
}

void RedisBus::reader_loop() {
    name_this_thread("hub-redis-rd");
    block_sigpipe_in_this_thread();
    Link& link = *reader_link_;
    const std::string block_ms = std::to_string(options_.read_block.count());
    const std::string count = std::to_string(options_.read_batch);
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) break;
        }
        if (!link.context) {
            if (!wait_backoff(link)) break;
            bool ready = connect_link(link, "reader");
            if (ready && !position_reader(link)) {
                if (link.context) link_lost(link, "reader", link.context->errstr[0] ? link.context->errstr : "XINFO failed");
                ready = false;
            }
            std::vector<std::string> lines;
            {
                std::lock_guard lock(mutex_);
                reader_tried_ = true;
                if (ready) {
                    reader_up_ = true;
                    update_connected_locked(lines);
                }
            }
            first_attempts_.notify_all();
            for (const auto& line : lines) log(line);
            if (!ready) continue;
            wake_writer_.notify_one();
        }
        ReplyPtr reply = command(link.context, {"XREAD", "BLOCK", block_ms, "COUNT", count, "STREAMS", options_.stream_key, link.last_id});
        if (!reply) {
            link_lost(link, "reader", link.context->errstr[0] ? link.context->errstr : "connection closed");
            continue;
        }
        if (reply->type == REDIS_REPLY_NIL) continue;  // nothing new within read_block
        if (reply->type == REDIS_REPLY_ERROR) {
            link_lost(link, "reader", fmt::format("XREAD: {}", reply_text(reply.get())));
            continue;
        }
        deliver_batch(reply.get());
    }
}

void RedisBus::deliver_batch(void* raw_reply) {
    const auto* reply = static_cast<const redisReply*>(raw_reply);
    Link& link = *reader_link_;
    // [[key, [[id, [field, value, ...]], ...]]]
    if (reply->type != REDIS_REPLY_ARRAY) return;
    std::vector<std::uint64_t> own_delivered;
    std::uint64_t received = 0;
    for (std::size_t s = 0; s < reply->elements; ++s) {
        const redisReply* stream = reply->element[s];
        if (stream->type != REDIS_REPLY_ARRAY || stream->elements < 2) continue;
        const redisReply* entries = stream->element[1];
        if (entries->type != REDIS_REPLY_ARRAY) continue;
        for (std::size_t e = 0; e < entries->elements; ++e) {
            const redisReply* entry = entries->element[e];
            if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 || !is_text(entry->element[0])) continue;
            link.last_id = std::string(reply_text(entry->element[0]));
            const redisReply* fields = entry->element[1];
            if (fields->type != REDIS_REPLY_ARRAY) continue;
            std::optional<std::string_view> topic, payload;
            std::string_view node, seq_text;
            for (std::size_t f = 0; f + 1 < fields->elements; f += 2) {
                const std::string_view name = reply_text(fields->element[f]);
                const std::string_view value = reply_text(fields->element[f + 1]);
                if (name == "t") topic = value;
                else if (name == "p") payload = value;
                else if (name == "n") node = value;
                else if (name == "s") seq_text = value;
            }
            if (!topic || !payload) continue;  // not one of ours: skip, keep the order
            ++received;
            try {
                if (handler_) handler_(*topic, *payload);
            } catch (const std::exception& error) {
                log(fmt::format("handler threw on topic '{}': {}", *topic, error.what()));
            } catch (...) {
                log(fmt::format("handler threw on topic '{}'", *topic));
            }
            std::uint64_t seq = 0;
            if (node == node_id_ && parse_number(seq_text, seq)) own_delivered.push_back(seq);
        }
    }
    std::vector<Outcome> outcomes;
    {
        std::lock_guard lock(mutex_);
        status_.received += received;
        for (std::uint64_t seq : own_delivered) {
            auto it = pending_.find(seq);
            if (it == pending_.end()) continue;  // answered already (timed out, stopped)
            if (it->second.accepted) {
                outcomes.push_back(Outcome{std::move(it->second.done), true, {}});
                pending_bytes_ -= it->second.bytes;
                pending_.erase(it);
            } else {
                it->second.delivered = true;  // the writer answers when XADD's reply comes
            }
        }
    }
    fire(outcomes);
}

}  // namespace hub
