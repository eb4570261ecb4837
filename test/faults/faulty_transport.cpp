#include "test/faults/faulty_transport.hpp"

#include <algorithm>

namespace faults {

using websock::detail::IoResult;
using websock::detail::Transport;

const char* to_string(CallKind kind) {
    switch (kind) {
        case CallKind::Handshake: return "handshake";
        case CallKind::Read: return "read";
        case CallKind::Write: return "write";
        case CallKind::Shutdown: return "shutdown";
        case CallKind::DirectWrite: return "direct write";
    }
    return "?";
}

const char* to_string(Failure failure) {
    switch (failure) {
        case Failure::WouldBlock: return "EAGAIN";
        case Failure::ShortWrite: return "short write";
        case Failure::Eof: return "EOF";
        case Failure::Reset: return "ECONNRESET";
        case Failure::BrokenPipe: return "EPIPE";
        case Failure::TlsError: return "TLS error";
        case Failure::Skipped: return "no FIN";
    }
    return "?";
}

std::vector<Failure> failures_for(CallKind kind, bool tls) {
    switch (kind) {
        case CallKind::Handshake:
            return {Failure::WouldBlock, Failure::Eof, Failure::Reset, Failure::TlsError};
        case CallKind::Read:
            if (tls) return {Failure::WouldBlock, Failure::Eof, Failure::Reset, Failure::TlsError};
            return {Failure::WouldBlock, Failure::Eof, Failure::Reset};
        case CallKind::Write:
            if (tls) return {Failure::WouldBlock, Failure::ShortWrite, Failure::BrokenPipe, Failure::Reset, Failure::TlsError};
            return {Failure::WouldBlock, Failure::ShortWrite, Failure::BrokenPipe, Failure::Reset};
        case CallKind::Shutdown: return {Failure::Skipped};
        case CallKind::DirectWrite: return {Failure::WouldBlock, Failure::ShortWrite, Failure::BrokenPipe, Failure::Reset};
    }
    return {};
}

bool FaultPlan::next(CallKind kind, bool tls, Failure& failure) {
    const int call = ++calls_;
    {
        std::lock_guard lock(mutex_);
        log_.push_back(kind);
    }
    if (call != fail_at_) return false;
    const auto choices = failures_for(kind, tls);
    failure = choices[variant_ % choices.size()];
    {
        std::lock_guard lock(mutex_);
        description_ = std::string(to_string(failure)) + " on call " + std::to_string(call) + " (" + to_string(kind) + ")";
    }
    injected_.store(true);
    return true;
}

std::vector<CallKind> FaultPlan::log() const {
    std::lock_guard lock(mutex_);
    return log_;
}

std::string FaultPlan::injected_description() const {
    std::lock_guard lock(mutex_);
    return description_;
}

namespace {

class FaultyTransport final : public Transport {
public:
    FaultyTransport(std::unique_ptr<Transport> inner, std::shared_ptr<FaultPlan> plan, bool tls)
        : inner_(std::move(inner)), plan_(std::move(plan)), tls_(tls) {}

    bool handshake() override {
        Failure failure{};
        if (plan_->next(CallKind::Handshake, tls_, failure)) {
            if (failure == Failure::WouldBlock) return false;  // waits for the socket, no error
            error_ = std::string("injected: ") + to_string(failure);
            return false;
        }
        const bool done = inner_->handshake();
        error_ = inner_->error();
        return done;
    }

    IoResult read(void* buffer, std::size_t size) override {
        Failure failure{};
        if (plan_->next(CallKind::Read, tls_, failure)) return fail(failure);
        const auto result = inner_->read(buffer, size);
        error_ = inner_->error();
        return result;
    }

    IoResult write(const void* data, std::size_t size) override {
        Failure failure{};
        if (plan_->next(CallKind::Write, tls_, failure)) {
            if (failure == Failure::ShortWrite && size > 1) {
                const auto result = inner_->write(data, std::max<std::size_t>(1, size / 2));
                error_ = inner_->error();
                return result;
            }
            return fail(failure);
        }
        const auto result = inner_->write(data, size);
        error_ = inner_->error();
        return result;
    }

    bool writes_from_any_thread() const noexcept override { return inner_->writes_from_any_thread(); }

    IoResult write_pair(const void* first, std::size_t first_size, const void* second,
                        std::size_t second_size) noexcept override {
        Failure failure{};
        bool inject = false;
        try {
            inject = plan_->next(CallKind::DirectWrite, tls_, failure);
        } catch (...) {  // the plan's log could not grow: count it as not injected
        }
        if (!inject) return inner_->write_pair(first, first_size, second, second_size);
        if (failure == Failure::ShortWrite && first_size + second_size > 1) {
            // Half of it, and never the whole header: the rest must follow in order.
            const std::size_t half = std::max<std::size_t>(1, (first_size + second_size) / 2);
            if (half <= first_size) return inner_->write_pair(first, half, nullptr, 0);
            return inner_->write_pair(first, first_size, second, half - first_size);
        }
        // Like a real failure of this call, it sets no error(): the connection's thread owns it.
        if (failure == Failure::WouldBlock || failure == Failure::ShortWrite) return {IoResult::Status::WouldBlock, 0};
        return {IoResult::Status::Error, 0};
    }

    bool wants_write() const noexcept override { return inner_->wants_write(); }
    bool has_buffered_input() const noexcept override { return inner_->has_buffered_input(); }

    void shutdown_write() noexcept override {
        Failure failure{};
        bool skip = false;
        try {
            skip = plan_->next(CallKind::Shutdown, tls_, failure);
        } catch (...) {
        }
        if (!skip) inner_->shutdown_write();
    }

private:
    IoResult fail(Failure failure) {
        switch (failure) {
            case Failure::WouldBlock:
            case Failure::ShortWrite: return {IoResult::Status::WouldBlock, 0};
            case Failure::Eof: return {IoResult::Status::Eof, 0};
            default: error_ = std::string("injected: ") + to_string(failure); return {IoResult::Status::Error, 0};
        }
    }

    std::unique_ptr<Transport> inner_;
    std::shared_ptr<FaultPlan> plan_;
    bool tls_;
};

}  // namespace

std::unique_ptr<Transport> make_faulty_transport(std::unique_ptr<Transport> inner, std::shared_ptr<FaultPlan> plan,
                                                 bool tls) {
    return std::make_unique<FaultyTransport>(std::move(inner), std::move(plan), tls);
}

}  // namespace faults
