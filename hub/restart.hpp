// Zero-downtime restart of websock-hub (docs/hub.md, "Zero-downtime restart").
//
// SIGHUP (or `websock-hub --restart PIDFILE`, which sends it and waits for the outcome) makes
// the running hub (the old process) start its binary again (the path /proc/self/exe named
// when it started, so an upgraded binary is what runs; same arguments and environment) with
// the listening socket as descriptor 3 (LISTEN_FDS=1, LISTEN_PID, LISTEN_FDNAMES, as systemd
// passes sockets) and one end of a private socketpair as descriptor 4. Then:
//
//   new: adopts the socket, starts its bus and modules, sends Ready          (old serves on)
//   old: stops accepting (connection attempts wait in the shared backlog), freezes publishes
//        (503 + Retry-After + Connection: close), sends each module's export_handover(), End
//   new: import_handover()s, writes the pidfile, tells systemd MAINPID + READY, sends
//        Serving, and accepts (what waited in the backlog first)
//   old: lets the connections it accepted finish their upgrade, closes every client with
//        1012 "service restart: reconnect and resume", drains for drain_timeout, exits 0
//
// If the new process fails before Serving (cannot start, exits, misses ready_timeout, sends
// Failed), the old one kills it if it still runs, reaps it, thaws, accepts again and logs
// why: it serves on as if nothing happened.
#pragma once

#include <signal.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hub {

class Hub;

struct RestartOptions {
    std::string pidfile;  ///< written atomically once serving; the successor rewrites it; "" for none
    /// How long a successor has to start and be Ready, and again to import and be Serving.
    std::chrono::milliseconds ready_timeout{30000};
    /// How long the old process's clients get to go after their 1012.
    std::chrono::milliseconds drain_timeout{10000};
};

/// The value a `--restart` request carries with its SIGHUP (sigqueue): the hub answers such a
/// request with SIGUSR1 (the successor serves) or SIGUSR2 (the restart failed) to its sender.
inline constexpr int kRestartRequestValue = 0x57e5;

class Restarter {
public:
    /// `argv`: the process's arguments, given again to the successor.
    Restarter(Hub& hub, std::vector<std::string> argv, RestartOptions options);
    ~Restarter();  ///< joins the restart thread
    Restarter(const Restarter&) = delete;
    Restarter& operator=(const Restarter&) = delete;

    /// After hub.listen(), before serving. With a predecessor's channel (`handover_fd` >= 0):
    /// tell it Ready, import what it hands over, then say Serving. Then, always: write the
    /// pidfile and tell systemd READY=1 and MAINPID. False (logged) when the takeover failed:
    /// the process should exit 1 (the predecessor serves on).
    bool start(int handover_fd);
    /// A SIGHUP (from the thread that waits for signals): start a restart on its own thread,
    /// unless one is under way (then a --restart sender is told it failed).
    void on_restart_signal(const siginfo_t& info);
    /// After serve_forever() returned: end a restart still under way (its new process is
    /// killed: a stopped hub hands nothing over), wait for the restart thread, and remove the
    /// pidfile unless a successor took it over.
    void finish();

private:
    void run_restart(pid_t requester);
    bool hand_over(int channel, pid_t child, std::string& why);

    Hub& hub_;
    std::vector<std::string> argv_;
    RestartOptions options_;
    std::string executable_;  // what /proc/self/exe named at start
    std::mutex mutex_;
    std::thread thread_;       // the restart under way or last done (guarded)
    bool restarting_ = false;  // (guarded)
    bool handed_over_ = false; // a successor serves: the pidfile is its (guarded)
    pid_t child_ = -1;         // the new process while a restart is under way (guarded)
};

/// `websock-hub --restart PIDFILE`: SIGHUP the hub named in PIDFILE and wait (at most
/// `timeout`) until it says its successor serves. 0: the pidfile now names the successor,
/// which runs; 1: the restart failed or timed out (the old process serves on). Prints what
/// happened on stdout/stderr.
int request_restart(const std::string& pidfile, std::chrono::milliseconds timeout);

}  // namespace hub
