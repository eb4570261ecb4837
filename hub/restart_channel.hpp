// The plumbing of a zero-downtime restart (hub/restart.hpp drives it): the messages the old
// and the new process exchange over their private socketpair, the sockets a process inherits
// (systemd's LISTEN_FDS convention, plus the handover channel), the pidfile, and the
// sd_notify(3) datagram. Free of Hub, so that tests can drive it directly.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hub::restart {

/// The environment variable that names the handover channel's descriptor in the new process.
inline constexpr const char* kHandoverFdVariable = "WEBSOCK_HUB_HANDOVER_FD";
/// Where the new process finds what it inherits: systemd's first descriptor, and the next.
inline constexpr int kListenFd = 3;
inline constexpr int kHandoverFd = 4;
/// LISTEN_FDNAMES of the socket a hub hands down.
inline constexpr const char* kListenFdName = "websock-hub";

// ---- the channel ----
// Each message: 4 bytes of length (big-endian, of what follows), 1 byte of kind, the body.
enum class MessageKind : std::uint8_t {
    Ready = 1,    ///< new -> old: started, modules up; body: its pid in decimal
    Module = 2,   ///< old -> new: one module's state; body: 2-byte name length, name, state
    End = 3,      ///< old -> new: every module's state was sent
    Serving = 4,  ///< new -> old: imported, pidfile written, accepting now
    Failed = 5,   ///< either way: giving up; body: why
};

struct Message {
    MessageKind kind = MessageKind::Failed;
    std::string body;
};

/// A message's body may be this large (module states included); larger is refused.
inline constexpr std::size_t kMaxMessageBytes = 1u << 30;

/// Write a whole message to a blocking or non-blocking stream socket before `deadline`.
/// False (with `error` set) on failure or timeout.
bool send_message(int fd, MessageKind kind, std::string_view body, std::chrono::steady_clock::time_point deadline,
                  std::string& error);
/// Read one whole message before `deadline`; nullopt (with `error`: "closed", "timed out",
/// or the failure) when none came.
std::optional<Message> receive_message(int fd, std::chrono::steady_clock::time_point deadline, std::string& error);

/// A Module message's body, and back (nullopt when malformed).
std::string encode_module_state(std::string_view module, std::string_view state);
std::optional<std::pair<std::string, std::string>> decode_module_state(std::string_view body);

// ---- what a process inherits ----
struct Inherited {
    int listen_fd = -1;       ///< a listening socket (kListenFd), or -1 when none was passed
    bool unix_socket = false; ///< it is a unix-domain socket (then unix_path names it)
    std::string unix_path;    ///< its path ("" for an abstract or unnamed one)
    std::string host;         ///< TCP: the address it is bound to ("127.0.0.1", "::1")
    std::uint16_t port = 0;   ///< TCP: its port
    int handover_fd = -1;     ///< the channel to a predecessor (kHandoverFd), or -1
    std::string error;        ///< non-empty: LISTEN_FDS was set but cannot be used
};
/// Read LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES (sd_listen_fds(3): used only when LISTEN_PID is
/// this process) and WEBSOCK_HUB_HANDOVER_FD, remove them from the environment (a child must
/// not take them for its own), and make the descriptors close-on-exec. Call it first in
/// main(), before any thread starts. More than one listening socket is an error.
Inherited take_inherited();

// ---- pidfile, systemd ----
/// Write `pid` and a newline to `path` atomically (a temporary file renamed over it).
bool write_pidfile(const std::string& path, long pid, std::string& error);
/// The pid in `path`, nullopt when it cannot be read or holds no number.
std::optional<long> read_pidfile(const std::string& path);
/// Remove `path` if it still names `pid` (a successor may have written its own by now).
void remove_pidfile_if_ours(const std::string& path, long pid);
/// Send `state` ("READY=1\nMAINPID=42") to $NOTIFY_SOCKET when it is set; the variable is
/// kept, so that a successor started from this process can notify too. False on failure.
bool notify_systemd(std::string_view state);

}  // namespace hub::restart
