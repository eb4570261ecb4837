// WebSocketServer's calls for a zero-downtime restart: stopping with a close code of the
// caller's, pausing accepts while clients carry on, handing the listening socket out.
// (Adopting a socket, ServerOptions::listen_fd, is part of listen() in server.cpp.)
#include <fcntl.h>

#include <algorithm>
#include <cerrno>

#include "websock/codec/frame.hpp"
#include "websock/detail/server_core.hpp"
#include "websock/server.hpp"

namespace websock {

std::size_t WebSocketServer::connection_count() const noexcept {
    std::lock_guard lock(core_->mutex);
    return core_->sessions.size() - std::min(core_->finished.size(), core_->sessions.size());
}

void WebSocketServer::stop(CloseCode code, std::string_view reason) noexcept {
    stop(code, reason, core_->options.shutdown_timeout);
}

void WebSocketServer::stop(CloseCode code, std::string_view reason, Milliseconds drain_timeout) noexcept {
    if (!core_->stopping.load()) {
        try {
            std::string text(reason.substr(0, codec::kMaxControlPayload - 2));
            // Cut at a character boundary: a close reason must be valid UTF-8.
            while (text.size() < reason.size() && !text.empty() && (static_cast<unsigned char>(reason[text.size()]) & 0xC0) == 0x80)
                text.pop_back();
            std::lock_guard lock(core_->mutex);
            core_->stop_close_ = {code, std::move(text)};
            core_->stop_drain_timeout_ = drain_timeout;
        } catch (...) {
            // No memory for the reason: the default one goes out.
        }
    }
    stop();
}

void WebSocketServer::pause_accepting() noexcept {
    auto& control = core_->accept_control;
    std::uint64_t value = control.load();
    while ((value & 1) == 0 && !control.compare_exchange_weak(value, value + 1)) {
    }
    core_->waker.wake();
}

void WebSocketServer::resume_accepting() noexcept {
    auto& control = core_->accept_control;
    std::uint64_t value = control.load();
    while ((value & 1) == 1 && !control.compare_exchange_weak(value, value + 1)) {
    }
    core_->waker.wake();
}

bool WebSocketServer::accepting_paused() const noexcept {
    const std::uint64_t value = core_->accept_control.load();
    if ((value & 1) == 0) return false;
    // Not serving: nothing accepts, so the pause holds at once.
    return core_->accept_paused_ack.load() == value || !core_->serving.load();
}

int WebSocketServer::duplicate_listen_socket() noexcept {
    std::lock_guard lock(core_->mutex);  // against the shutdown closing it (close_listener)
    if (!core_->listen_fd.valid()) {
        errno = EBADF;
        return -1;
    }
    if (const int error = core_->serving_fault_for(detail::ServerCore::ServingCall::DuplicateListener)) {
        errno = error;
        return -1;
    }
    const int copy = ::fcntl(core_->listen_fd.get(), F_DUPFD_CLOEXEC, 3);
    if (copy >= 0) core_->unlink_socket_path.store(false);
    return copy;
}

}  // namespace websock
