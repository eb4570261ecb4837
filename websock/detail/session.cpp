// The thread-per-client engine: the body of one client thread. It pumps a single
// ClientDriver with poll() on two descriptors, the socket and the client's eventfd.
#include <poll.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "websock/detail/client_driver.hpp"

namespace websock::detail {

void ServerCore::run_session(std::shared_ptr<Client> client, Fd socket) {
    const auto id = client->id();
    ClientCore& client_core = core(*client);
    client_core.owner = std::this_thread::get_id();  // sends from this thread need no wake-up
    try {
        ReadBuffer read_buffer(std::max<std::size_t>(options.read_buffer_bytes, 4096));
        ClientDriver driver(*this, std::move(client), std::move(socket), read_buffer);
        driver.set_eager_reread(true);
        bool stop_seen = false;
        while (!driver.finished()) {
            try {
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
                const auto deadline = driver.deadline();
                const int timeout =
                    deadline == ClientDriver::Clock::time_point::max() ? -1 : poll_timeout_ms(deadline);
                const int ready = ::poll(fds, 2, timeout);
                if (ready < 0 && errno != EINTR) {
                    report(client_core.self, ErrorKind::Io, fmt::format("poll: {}", std::strerror(errno)));
                    driver.abort();
                    break;
                }
                if (ready > 0) {
                    if (fds[1].revents & POLLIN) driver.on_wake();
                    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) driver.on_readable();
                    if (fds[0].revents & POLLOUT) driver.on_writable();
                }
                driver.on_tick(ClientDriver::Clock::now());
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
