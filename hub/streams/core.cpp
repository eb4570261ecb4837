#include "hub/streams/core.hpp"

#include <algorithm>
#include <chrono>

#include "hub/log.hpp"

namespace hub::streams {

namespace {

constexpr std::size_t kMaxCloseReasonBytes = 123;  // RFC 6455: a close frame's reason
// How often the worker looks whether a catching-up subscriber's queue has drained. Short
// enough that a reader is never idle long; a queue of a megabyte takes longer to write.
constexpr auto kRoomPollInterval = std::chrono::milliseconds(10);

}  // namespace

struct Core::Subscription {
    Subscription(std::string name, std::shared_ptr<websock::Client> c, std::optional<Position> since, CursorLimits limits)
        : channel(std::move(name)), client(std::move(c)), ack(limits.ack), cursor(std::move(since), limits) {}

    const std::string channel;
    const std::shared_ptr<websock::Client> client;
    const bool ack;
    std::weak_ptr<Session> session;
    std::mutex mutex;  // orders everything sent for this subscription
    StreamCursor cursor;  // guarded by mutex
    bool active = true;   // guarded by mutex: false once unsubscribed, ended or disconnected
};

struct Core::Session {
    explicit Session(std::shared_ptr<websock::Client> c) : client(std::move(c)) {}
    const std::shared_ptr<websock::Client> client;
    std::mutex mutex;
    std::unordered_map<std::string, std::shared_ptr<Subscription>> subscriptions;  // guarded by mutex
    bool closed = false;  // guarded by mutex
};

// What a cursor asked for, done at once under the subscription's lock (sends keep their
// order) or afterwards (a read to queue, the subscription to drop).
class Core::Actions final : public CursorOutput {
public:
    Actions(Core& core, Subscription& subscription) : core_(core), subscription_(subscription) {}

    void subscribed(const Position& position, std::optional<bool> recovered, std::string_view reason) override {
        if (recovered) (*recovered ? core_.resumed_ : core_.not_recovered_).fetch_add(1, std::memory_order_relaxed);
        subscription_.client->send(encode_subscribed(subscription_.channel, position, recovered, reason, subscription_.ack));
    }
    void deliver(const MessagePtr& message) override {
        if (subscription_.client->send_encoded(message->frame) == websock::SendResult::Queued)
            core_.delivered_.fetch_add(1, std::memory_order_relaxed);
        else
            core_.dropped_.fetch_add(1, std::memory_order_relaxed);
    }
    void reset(const Position& position, std::string_view reason) override {
        subscription_.client->send(encode_reset(subscription_.channel, position, reason));
    }
    void read_history(std::uint64_t after, std::size_t max_messages) override { read = ReadTask{{}, after, max_messages}; }
    bool has_room() override { return subscription_.client->queued_bytes() < core_.options_.catch_up_queue_bytes; }
    void wait_for_room() override { wait = true; }
    void end(EndKind kind, std::string_view message) override {
        ended = true;
        subscription_.active = false;
        auto& client = *subscription_.client;
        switch (kind) {
            case EndKind::SubscribeFailed:
                client.send(encode_error(ProtocolError{"history_unavailable", std::string(message), "subscribe", subscription_.channel}));
                break;
            case EndKind::HistoryLost:
                core_.history_lost_.fetch_add(1, std::memory_order_relaxed);
                client.send(encode_unsubscribed(subscription_.channel, message));
                break;
            case EndKind::AckWindowFull: {
                core_.ack_window_cuts_.fetch_add(1, std::memory_order_relaxed);
                client.send(encode_notice("ack_window_full", subscription_.channel, message));
                std::string reason = "ack window full on channel " + subscription_.channel;
                if (reason.size() > kMaxCloseReasonBytes) reason.resize(kMaxCloseReasonBytes);
                client.close(websock::CloseCode::PolicyViolation, reason);
                log_info("streams: client {} closed with 1008: {}: {}", client.id(), subscription_.channel, message);
                break;
            }
        }
    }

    std::optional<ReadTask> read;
    bool wait = false;
    bool ended = false;

private:
    Core& core_;
    Subscription& subscription_;
};

Core::Core(StreamsOptions options, Bus* bus) : options_(std::move(options)), bus_(bus) {}

Core::~Core() { stop_worker(); }

void Core::start_worker() {
    if (!worker_.joinable()) worker_ = std::thread([this] { worker_loop(); });
}

void Core::stop_worker() noexcept {
    {
        std::lock_guard lock(tasks_mutex_);
        stopping_ = true;
        tasks_.clear();
        waiting_room_.clear();
    }
    tasks_wake_.notify_all();
    if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

void Core::enqueue(ReadTask task) {
    {
        std::lock_guard lock(tasks_mutex_);
        if (stopping_) return;
        tasks_.push_back(std::move(task));
    }
    tasks_wake_.notify_one();
}

void Core::worker_loop() {
    std::unique_lock lock(tasks_mutex_);
    auto last_poll = std::chrono::steady_clock::now();
    for (;;) {
        const auto ready = [this] { return stopping_ || !tasks_.empty(); };
        if (waiting_room_.empty()) tasks_wake_.wait(lock, ready);
        else tasks_wake_.wait_until(lock, last_poll + kRoomPollInterval, ready);
        if (stopping_) return;
        if (!waiting_room_.empty() && std::chrono::steady_clock::now() >= last_poll + kRoomPollInterval) {
            lock.unlock();
            poll_waiting_room();
            last_poll = std::chrono::steady_clock::now();
            lock.lock();
            continue;
        }
        if (tasks_.empty()) continue;
        ReadTask task = std::move(tasks_.front());
        tasks_.pop_front();
        lock.unlock();
        if (auto subscription = task.subscription.lock()) {
            // The answer may come at once (LocalBus) or later on the bus's thread (Redis); the
            // weak references let it find nothing once the module or the subscription is gone.
            std::weak_ptr<Core> weak_core = weak_from_this();
            std::weak_ptr<Subscription> weak_subscription = subscription;
            const std::string channel = subscription->channel;
            subscription.reset();
            try {
                bus_->read_history(channel, task.after, task.max_messages, [weak_core, weak_subscription](HistoryRead read) {
                    const auto core = weak_core.lock();
                    const auto target = weak_subscription.lock();
                    if (core && target) core->on_history(target, std::move(read));
                });
            } catch (const std::exception& e) {
                log_error("streams: a history read failed: {}", e.what());
            }
        }
        lock.lock();
    }
}

void Core::wait_for_room(const std::shared_ptr<Subscription>& subscription) {
    {
        std::lock_guard lock(tasks_mutex_);
        if (stopping_) return;
        waiting_room_.push_back(subscription);
    }
    tasks_wake_.notify_one();
}

void Core::poll_waiting_room() {
    std::vector<std::weak_ptr<Subscription>> waiting;
    {
        std::lock_guard lock(tasks_mutex_);
        waiting.swap(waiting_room_);
    }
    std::vector<std::weak_ptr<Subscription>> still;
    for (const auto& weak : waiting) {
        const auto subscription = weak.lock();
        if (!subscription) continue;
        if (subscription->client->queued_bytes() >= options_.catch_up_queue_bytes && subscription->client->is_open()) {
            still.push_back(weak);
            continue;
        }
        Actions actions(*this, *subscription);
        {
            std::lock_guard lock(subscription->mutex);
            if (!subscription->active) continue;
            subscription->cursor.on_room(actions);
        }
        finish(subscription, actions);
    }
    std::lock_guard lock(tasks_mutex_);
    if (!stopping_) waiting_room_.insert(waiting_room_.end(), still.begin(), still.end());
}

MessagePtr Core::make_message(const SequencedMessage& message) {
    auto made = std::make_shared<StreamMessage>();
    made->epoch = message.epoch;
    made->offset = message.offset;
    const auto payload = decode_payload(message.payload);
    // Only this module writes these streams; a payload it cannot read goes out as bytes.
    const Format format = payload ? payload->format : Format::Binary;
    const std::string_view data = payload ? payload->data : std::string_view(message.payload);
    made->payload_bytes = data.size();
    made->frame = websock::encode_message(encode_message(message.stream, message.epoch, message.offset, format, data),
                                          websock::MessageType::Text);
    return made;
}

// ---- connections ----

void Core::open(websock::Client& client) {
    auto session = std::make_shared<Session>(client.shared_from_this());
    std::lock_guard lock(mutex_);
    sessions_[client.id()] = std::move(session);
}

void Core::close(std::uint64_t client_id) {
    std::shared_ptr<Session> session;
    {
        std::lock_guard lock(mutex_);
        const auto it = sessions_.find(client_id);
        if (it == sessions_.end()) return;
        session = std::move(it->second);
        sessions_.erase(it);
    }
    std::unordered_map<std::string, std::shared_ptr<Subscription>> subscriptions;
    {
        std::lock_guard lock(session->mutex);
        session->closed = true;
        subscriptions.swap(session->subscriptions);
    }
    for (auto& [channel, subscription] : subscriptions) {
        {
            std::lock_guard lock(subscription->mutex);
            subscription->active = false;
        }
        remove_from_index(subscription);
    }
}

std::shared_ptr<Core::Session> Core::session_of(std::uint64_t client_id) const {
    std::lock_guard lock(mutex_);
    const auto it = sessions_.find(client_id);
    return it == sessions_.end() ? nullptr : it->second;
}

void Core::handle_frame(websock::Client& client, std::string_view text) {
    const auto session = session_of(client.id());
    if (!session) return;
    auto parsed = parse_client_op(text, options_.max_channel_name_bytes);
    if (auto* error = std::get_if<ProtocolError>(&parsed)) {
        client.send(encode_error(*error));
        return;
    }
    auto& op = std::get<ClientOp>(parsed);
    if (auto* subscribe_op = std::get_if<SubscribeOp>(&op)) subscribe(session, std::move(*subscribe_op));
    else if (const auto* unsubscribe_op = std::get_if<UnsubscribeOp>(&op)) unsubscribe(session, *unsubscribe_op);
    else ack(session, std::get<AckOp>(op));
}

void Core::subscribe(const std::shared_ptr<Session>& session, SubscribeOp op) {
    CursorLimits limits;
    limits.page_messages = options_.history_page_messages;
    limits.max_buffered = options_.max_catch_up_buffer;
    limits.max_buffered_bytes = options_.max_catch_up_buffer_bytes;
    limits.ack = op.ack;
    limits.ack_window_messages = options_.ack_window_messages;
    limits.ack_window_bytes = options_.ack_window_bytes;
    auto subscription = std::make_shared<Subscription>(op.channel, session->client, std::move(op.since), limits);
    subscription->session = session;
    {
        std::lock_guard lock(session->mutex);
        if (session->closed) return;
        if (session->subscriptions.count(op.channel) != 0) {
            session->client->send(encode_error(ProtocolError{"already_subscribed", "this connection follows the channel already",
                                                             "subscribe", op.channel}));
            return;
        }
        if (session->subscriptions.size() >= options_.max_subscriptions_per_connection) {
            session->client->send(encode_error(ProtocolError{
                "too_many_subscriptions",
                "a connection may follow at most " + std::to_string(options_.max_subscriptions_per_connection) + " channels",
                "subscribe", op.channel}));
            return;
        }
        session->subscriptions[op.channel] = subscription;
    }
    Actions actions(*this, *subscription);
    {
        std::lock_guard lock(subscription->mutex);
        subscription->cursor.start(actions);  // asks for the first read; nothing is sent yet
    }
    // Registered for live messages BEFORE the first history read is queued: nothing falls
    // between the two (what both see is sent once, by offset).
    add_to_index(subscription);
    finish(subscription, actions);
}

void Core::unsubscribe(const std::shared_ptr<Session>& session, const UnsubscribeOp& op) {
    std::shared_ptr<Subscription> subscription;
    {
        std::lock_guard lock(session->mutex);
        const auto it = session->subscriptions.find(op.channel);
        if (it != session->subscriptions.end()) {
            subscription = std::move(it->second);
            session->subscriptions.erase(it);
        }
    }
    if (!subscription) {
        session->client->send(encode_error(ProtocolError{"not_subscribed", "this connection does not follow the channel",
                                                         "unsubscribe", op.channel}));
        return;
    }
    remove_from_index(subscription);
    std::lock_guard lock(subscription->mutex);
    subscription->active = false;
    // Under the lock: nothing for this subscription can be sent after this answer.
    session->client->send(encode_unsubscribed(op.channel, {}));
}

void Core::ack(const std::shared_ptr<Session>& session, const AckOp& op) {
    std::shared_ptr<Subscription> subscription;
    {
        std::lock_guard lock(session->mutex);
        const auto it = session->subscriptions.find(op.channel);
        if (it != session->subscriptions.end()) subscription = it->second;
    }
    if (!subscription) {
        session->client->send(
            encode_error(ProtocolError{"not_subscribed", "this connection does not follow the channel", "ack", op.channel}));
        return;
    }
    Actions actions(*this, *subscription);
    std::string problem;
    {
        std::lock_guard lock(subscription->mutex);
        if (!subscription->active) return;
        problem = subscription->cursor.on_ack(op.offset, actions);
    }
    if (!problem.empty()) session->client->send(encode_error(ProtocolError{"bad_ack", problem, "ack", op.channel}));
    finish(subscription, actions);
}

void Core::finish(const std::shared_ptr<Subscription>& subscription, Actions& actions) {
    if (actions.ended) {
        remove(subscription);
        return;
    }
    if (actions.read) {
        actions.read->subscription = subscription;
        enqueue(std::move(*actions.read));
    }
    if (actions.wait) wait_for_room(subscription);
}

void Core::remove(const std::shared_ptr<Subscription>& subscription) {
    if (const auto session = subscription->session.lock()) {
        std::lock_guard lock(session->mutex);
        const auto it = session->subscriptions.find(subscription->channel);
        if (it != session->subscriptions.end() && it->second == subscription) session->subscriptions.erase(it);
    }
    remove_from_index(subscription);
}

// ---- the index: channel -> subscriptions, copied on write ----

void Core::add_to_index(const std::shared_ptr<Subscription>& subscription) {
    std::lock_guard lock(mutex_);
    auto& slot = channels_[subscription->channel];
    auto next = std::make_shared<Subscribers>();
    next->reserve((slot ? slot->size() : 0) + 1);
    if (slot) *next = *slot;
    next->push_back(subscription);
    slot = std::move(next);
    ++subscriptions_;
}

void Core::remove_from_index(const std::shared_ptr<Subscription>& subscription) {
    std::shared_ptr<const Subscribers> released;  // the last reference dies outside the lock
    std::lock_guard lock(mutex_);
    const auto it = channels_.find(subscription->channel);
    if (it == channels_.end()) return;
    const Subscribers& current = *it->second;
    if (std::find(current.begin(), current.end(), subscription) == current.end()) return;
    released = it->second;
    if (current.size() == 1) {
        channels_.erase(it);
    } else {
        auto next = std::make_shared<Subscribers>();
        next->reserve(current.size() - 1);
        for (const auto& s : current)
            if (s != subscription) next->push_back(s);
        it->second = std::move(next);
    }
    --subscriptions_;
}

std::shared_ptr<const Core::Subscribers> Core::snapshot(std::string_view channel) const {
    std::lock_guard lock(mutex_);
    const auto it = channels_.find(channel);
    return it == channels_.end() ? nullptr : it->second;
}

// ---- messages ----

void Core::on_bus_message(std::string_view payload) {
    const auto message = decode_sequenced(payload);
    if (!message) {
        log_error("streams: a bus message ({} bytes) is not a sequenced message; not delivered", payload.size());
        return;
    }
    const auto subscribers = snapshot(message->stream);
    if (!subscribers) return;
    const MessagePtr ready = make_message(*message);  // one frame for every subscriber
    for (const auto& subscription : *subscribers) {
        Actions actions(*this, *subscription);
        {
            std::lock_guard lock(subscription->mutex);
            if (!subscription->active) continue;
            subscription->cursor.on_live(ready, actions);
        }
        finish(subscription, actions);
    }
}

void Core::on_history(const std::shared_ptr<Subscription>& subscription, HistoryRead read) {
    HistoryPage page;
    page.ok = read.ok;
    page.error = std::move(read.error);
    page.epoch = std::move(read.epoch);
    page.last_offset = read.last_offset;
    page.oldest_offset = read.oldest_offset;
    page.messages.reserve(read.messages.size());
    for (const auto& message : read.messages) page.messages.push_back(make_message(message));
    Actions actions(*this, *subscription);
    {
        std::lock_guard lock(subscription->mutex);
        if (!subscription->active) return;
        subscription->cursor.on_history(page, actions);
    }
    finish(subscription, actions);
}

void Core::notify_stopping() {
    std::vector<std::shared_ptr<Session>> sessions;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [id, session] : sessions_) sessions.push_back(session);
    }
    const std::string notice =
        encode_notice("going_away", {}, "the hub is stopping: reconnect and subscribe with since = your last offset");
    for (const auto& session : sessions) session->client->send(notice);
}

CoreStats Core::stats() const {
    CoreStats stats;
    stats.delivered = delivered_.load(std::memory_order_relaxed);
    stats.dropped = dropped_.load(std::memory_order_relaxed);
    stats.resumed = resumed_.load(std::memory_order_relaxed);
    stats.not_recovered = not_recovered_.load(std::memory_order_relaxed);
    stats.ack_window_cuts = ack_window_cuts_.load(std::memory_order_relaxed);
    stats.history_lost = history_lost_.load(std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    stats.subscriptions = subscriptions_;
    stats.channels = channels_.size();
    return stats;
}

}  // namespace hub::streams
