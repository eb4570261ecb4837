// The hub's message bus: how a publish reaches every node. Every state change and every
// message of both APIs travels as (topic, payload) through one Bus; each node applies what
// it hears, in the bus's order, to its own subscribers and state.
//
//   LocalBus  one process: publish() hands the message straight to the handler.
//   RedisBus  several nodes (hub/redis_bus.hpp): through a Redis stream, in one total order.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace hub {

/// What /metrics and the log say about the bus.
struct BusStatus {
    std::string kind;              ///< "local" or "redis"
    bool connected = true;         ///< false while Redis is unreachable
    std::uint64_t reconnects = 0;  ///< successful reconnections since start
    std::uint64_t published = 0;   ///< messages this node put on the bus
    std::uint64_t received = 0;    ///< messages this node took off it (its own included)
    std::uint64_t failed = 0;      ///< publishes refused (Redis down, timeout)
    std::string last_error;        ///< empty when healthy; never contains secrets
};

class Bus {
public:
    /// Called for every message on the bus, this node's own included, exactly once each, in
    /// the bus's order (which keeps each publisher's order). Runs on the bus's own thread
    /// (RedisBus) or inside publish() (LocalBus); must not block for long.
    using Handler = std::function<void(std::string_view topic, std::string_view payload)>;
    /// The outcome of one publish: ok once the message is on the bus AND this node's handler
    /// has already run for it (so a caller can answer with state that includes its own
    /// write); !ok with a short reason when it was not accepted (then no node sees it).
    /// May run on any thread, exactly once.
    using Done = std::function<void(bool ok, std::string_view error)>;

    virtual ~Bus() = default;
    /// Start delivering to `handler`. Called once, before any publish().
    virtual void start(Handler handler) = 0;
    /// Put a message on the bus. Never blocks on the network: the outcome comes to `done`.
    virtual void publish(std::string topic, std::string payload, Done done) = 0;
    /// Stop delivering; no handler runs after this returns. Pending publishes get !ok.
    virtual void stop() = 0;
    virtual BusStatus status() const = 0;
};

/// One process, no Redis: publish() runs the handler at once, on the caller's thread.
class LocalBus final : public Bus {
public:
    void start(Handler handler) override { handler_ = std::move(handler); }
    void publish(std::string topic, std::string payload, Done done) override {
        {
            std::lock_guard lock(mutex_);  // one message at a time: the bus has one order
            if (handler_) handler_(topic, payload);
            ++status_.published;
            ++status_.received;
        }
        if (done) done(true, {});
    }
    void stop() override {
        std::lock_guard lock(mutex_);
        handler_ = nullptr;
    }
    BusStatus status() const override {
        std::lock_guard lock(mutex_);
        BusStatus status = status_;
        status.kind = "local";
        return status;
    }

private:
    mutable std::mutex mutex_;
    Handler handler_;
    BusStatus status_;
};

}  // namespace hub
