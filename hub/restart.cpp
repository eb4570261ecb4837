#include "hub/restart.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include <fmt/format.h>

#include "hub/hub.hpp"
#include "hub/log.hpp"
#include "hub/restart_channel.hpp"

extern char** environ;

namespace hub {

namespace {

using Clock = std::chrono::steady_clock;
using restart::MessageKind;

// Connections the old process accepted before it paused get this long to finish their
// upgrade (or their request) before the clients are closed: they are then 1012'd like
// everyone else, instead of cut mid-handshake.
constexpr std::chrono::milliseconds kSettleLimit{2000};
// The accepting thread lets go of the listener within one turn of its loop.
constexpr std::chrono::milliseconds kPauseLimit{5000};
// Publishes already inside a module finish within this (a Redis one is only handed over).
constexpr std::chrono::milliseconds kFreezeLimit{5000};

template <class Condition>
bool wait_until(Condition condition, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!condition()) {
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

std::string self_executable() {
    char path[PATH_MAX];
    const ssize_t size = ::readlink("/proc/self/exe", path, sizeof path - 1);
    if (size <= 0) return "/proc/self/exe";
    std::string name(path, static_cast<std::size_t>(size));
    // Replaced while we ran (an upgrade): the path is what we want to run again.
    constexpr std::string_view kDeleted = " (deleted)";
    if (name.size() > kDeleted.size() && name.compare(name.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0)
        name.resize(name.size() - kDeleted.size());
    return name;
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
    return "ended";
}

/// Reap `child`, killing it first if it still runs; how it ended.
std::string reap(pid_t child) {
    int status = 0;
    pid_t done = ::waitpid(child, &status, WNOHANG);
    // Its end of the channel closes as it exits, a moment before it can be reaped: give an
    // exiting process that moment, so that its own exit status is what gets logged.
    wait_until([&] { return done != 0 || (done = ::waitpid(child, &status, WNOHANG)) != 0; }, std::chrono::milliseconds(500));
    if (done == 0) {
        ::kill(child, SIGKILL);
        do {
            done = ::waitpid(child, &status, 0);
        } while (done < 0 && errno == EINTR);
        return "was killed (SIGKILL)";
    }
    return done == child ? describe_status(status) : "ended";
}

void answer_requester(pid_t requester, int signal_number) {
    if (requester > 0) ::kill(requester, signal_number);
}

// The successor's environment: ours, without what described our own inheritance, plus its
// sockets. LISTEN_PID is a slot the child fills in with its own pid after fork().
struct ChildEnvironment {
    std::vector<std::string> strings;
    std::vector<char*> pointers;
    char listen_pid[32] = "LISTEN_PID=";

    ChildEnvironment() {
        for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
            const std::string_view text = *entry;
            const auto name = text.substr(0, text.find('='));
            if (name == "LISTEN_PID" || name == "LISTEN_FDS" || name == "LISTEN_FDNAMES" ||
                name == restart::kHandoverFdVariable)
                continue;
            strings.emplace_back(text);
        }
        strings.push_back("LISTEN_FDS=1");
        strings.push_back(fmt::format("LISTEN_FDNAMES={}", restart::kListenFdName));
        strings.push_back(fmt::format("{}={}", restart::kHandoverFdVariable, restart::kHandoverFd));
        for (auto& text : strings) pointers.push_back(text.data());
        pointers.push_back(listen_pid);
        pointers.push_back(nullptr);
    }
    /// In the child: async-signal-safe.
    void set_listen_pid(pid_t pid) noexcept {
        char digits[24];
        int count = 0;
        auto value = static_cast<unsigned long>(pid);
        do {
            digits[count++] = static_cast<char>('0' + value % 10);
            value /= 10;
        } while (value != 0 && count < 23);
        char* out = listen_pid + std::strlen("LISTEN_PID=");
        while (count > 0) *out++ = digits[--count];
        *out = '\0';
    }
};

/// fork() and exec the successor with the listening socket as fd 3 and the channel as fd 4.
/// The child's pid, or -1 with `why`.
pid_t spawn_successor(const std::string& executable, const std::vector<std::string>& argv, int listen_copy,
                      int channel_end, std::string& why) {
    std::vector<char*> arguments;
    std::vector<std::string> argument_copies(argv);
    for (auto& argument : argument_copies) arguments.push_back(argument.data());
    arguments.push_back(nullptr);
    ChildEnvironment environment;
    int exec_pipe[2];  // the child's exec() failure comes back through it; success closes it
    if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
        why = fmt::format("pipe: {}", std::strerror(errno));
        return -1;
    }
    const pid_t child = ::fork();
    if (child < 0) {
        why = fmt::format("fork: {}", std::strerror(errno));
        ::close(exec_pipe[0]);
        ::close(exec_pipe[1]);
        return -1;
    }
    if (child == 0) {
        // The child of a threaded process: async-signal-safe calls only, until execve().
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::signal(SIGPIPE, SIG_DFL);
        const int listen_high = ::fcntl(listen_copy, F_DUPFD, 10);
        const int channel_high = ::fcntl(channel_end, F_DUPFD, 10);
        const int report_high = ::fcntl(exec_pipe[1], F_DUPFD_CLOEXEC, 10);
        int error = 0;
        if (listen_high < 0 || channel_high < 0 || report_high < 0 || ::dup2(listen_high, restart::kListenFd) < 0 ||
            ::dup2(channel_high, restart::kHandoverFd) < 0 || ::dup3(report_high, 5, O_CLOEXEC) < 0) {
            error = errno;
        } else {
            // Nothing else of ours reaches the successor (sockets of libraries that do not
            // set close-on-exec, such as a Redis connection's).
            ::syscall(SYS_close_range, 6U, ~0U, 0U);
            environment.set_listen_pid(::getpid());
            ::execve(executable.c_str(), arguments.data(), environment.pointers.data());
            error = errno;
        }
        const int report = report_high >= 0 ? 5 : exec_pipe[1];
        [[maybe_unused]] const auto ignored = ::write(report, &error, sizeof error);
        ::_exit(127);
    }
    ::close(exec_pipe[1]);
    int exec_error = 0;
    ssize_t got;
    do {
        got = ::read(exec_pipe[0], &exec_error, sizeof exec_error);  // 0 (EOF) once exec succeeded
    } while (got < 0 && errno == EINTR);
    ::close(exec_pipe[0]);
    if (got == static_cast<ssize_t>(sizeof exec_error)) {
        why = fmt::format("cannot run {}: {} (it {})", executable, std::strerror(exec_error), reap(child));
        return -1;
    }
    return child;
}

}  // namespace

Restarter::Restarter(Hub& hub, std::vector<std::string> argv, RestartOptions options)
    : hub_(hub), argv_(std::move(argv)), options_(std::move(options)), executable_(self_executable()) {}

Restarter::~Restarter() { finish(); }

bool Restarter::start(int handover_fd) {
    const long pid = static_cast<long>(::getpid());
    if (handover_fd >= 0) {
        std::string error;
        std::size_t modules = 0;
        bool ok = restart::send_message(handover_fd, MessageKind::Ready, std::to_string(pid),
                                        Clock::now() + options_.ready_timeout, error);
        while (ok) {
            const auto message = restart::receive_message(handover_fd, Clock::now() + options_.ready_timeout, error);
            if (!message) {
                ok = false;
            } else if (message->kind == MessageKind::End) {
                break;
            } else if (message->kind == MessageKind::Module) {
                const auto state = restart::decode_module_state(message->body);
                if (!state) {
                    error = "a malformed module state";
                    ok = false;
                    break;
                }
                try {
                    hub_.import_handover(state->first, state->second);
                    ++modules;
                } catch (const std::exception& e) {
                    error = fmt::format("{}: import_handover failed: {}", state->first, e.what());
                    restart::send_message(handover_fd, MessageKind::Failed, error, Clock::now() + std::chrono::seconds(1), error);
                    ok = false;
                }
            } else {
                error = message->kind == MessageKind::Failed ? "the predecessor gave up: " + message->body : "an unexpected message";
                ok = false;
            }
        }
        if (!ok) {
            log_error("restart: taking over from the predecessor failed: {}; exiting (the predecessor serves on)", error);
            ::close(handover_fd);
            return false;
        }
        if (!options_.pidfile.empty() && !restart::write_pidfile(options_.pidfile, pid, error))
            log_error("restart: cannot write the pidfile: {}", error);
        restart::notify_systemd(fmt::format("MAINPID={}\nREADY=1", pid));
        if (!restart::send_message(handover_fd, MessageKind::Serving, {}, Clock::now() + options_.ready_timeout, error)) {
            log_error("restart: the predecessor did not take our Serving: {}; exiting", error);
            ::close(handover_fd);
            return false;
        }
        ::close(handover_fd);
        log_info("restart: took over (state of {} module{} imported); pid {} serves", modules, modules == 1 ? "" : "s", pid);
        return true;
    }
    std::string error;
    if (!options_.pidfile.empty() && !restart::write_pidfile(options_.pidfile, pid, error))
        log_error("cannot write the pidfile: {}", error);
    restart::notify_systemd(fmt::format("MAINPID={}\nREADY=1", pid));
    return true;
}

void Restarter::on_restart_signal(const siginfo_t& info) {
    const pid_t requester =
        info.si_code == SI_QUEUE && info.si_value.sival_int == kRestartRequestValue ? info.si_pid : 0;
    std::lock_guard lock(mutex_);
    if (restarting_ || handed_over_) {
        log_warning("restart: SIGHUP ignored: {}", handed_over_ ? "a successor serves already" : "a restart is under way");
        answer_requester(requester, SIGUSR2);
        return;
    }
    if (thread_.joinable()) thread_.join();  // the last one, done
    restarting_ = true;
    try {
        thread_ = std::thread([this, requester] { run_restart(requester); });
    } catch (const std::exception& e) {
        restarting_ = false;
        log_error("restart: cannot start its thread: {}", e.what());
        answer_requester(requester, SIGUSR2);
    }
}

void Restarter::run_restart(pid_t requester) {
    log_info("restart: starting {} (pid {} serves until it is ready)", executable_, ::getpid());
    std::string why;
    pid_t child = -1;
    int channel[2] = {-1, -1};
    const int listen_copy = hub_.server().duplicate_listen_socket();
    if (listen_copy < 0) {
        why = fmt::format("no listening socket to hand over: {}", std::strerror(errno));
    } else if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) != 0) {
        why = fmt::format("socketpair: {}", std::strerror(errno));
    } else {
        child = spawn_successor(executable_, argv_, listen_copy, channel[1], why);
        std::lock_guard lock(mutex_);
        child_ = child;
    }
    if (listen_copy >= 0) ::close(listen_copy);
    if (channel[1] >= 0) ::close(channel[1]);
    const bool ok = child > 0 && hand_over(channel[0], child, why);
    if (channel[0] >= 0) ::close(channel[0]);
    if (!ok) {
        if (child > 0) {
            {
                std::lock_guard lock(mutex_);
                child_ = -1;  // finish() must not signal a pid that is reaped below
            }
            const std::string ended = reap(child);
            why += fmt::format(" (pid {} {})", child, ended);
        }
        hub_.thaw();
        hub_.server().resume_accepting();
        log_error("restart failed: {}; pid {} serves on", why, ::getpid());
        answer_requester(requester, SIGUSR2);
        std::lock_guard lock(mutex_);
        restarting_ = false;
        return;
    }
    {
        std::lock_guard lock(mutex_);
        handed_over_ = true;
        restarting_ = false;
        child_ = -1;
    }
    answer_requester(requester, SIGUSR1);
    auto& server = hub_.server();
    // What this process accepted before it paused finishes its upgrade (and is then told to
    // reconnect) rather than being cut mid-handshake.
    wait_until([&] { return server.connection_count() <= server.client_count(); }, kSettleLimit);
    log_info("restart: pid {} serves; closing {} client{} with 1012 and draining for up to {} ms", child,
             server.client_count(), server.client_count() == 1 ? "" : "s", options_.drain_timeout.count());
    hub_.stop(websock::CloseCode::ServiceRestart, kRestartCloseReason, options_.drain_timeout);
}

bool Restarter::hand_over(int channel, pid_t child, std::string& why) {
    std::string error;
    const auto ready = restart::receive_message(channel, Clock::now() + options_.ready_timeout, error);
    if (!ready || ready->kind != MessageKind::Ready) {
        why = !ready ? (error == "closed" ? "the new process ended before it was ready"
                                          : fmt::format("the new process was not ready: {}", error))
                     : fmt::format("the new process said {}", ready->kind == MessageKind::Failed ? ready->body : "something unexpected");
        return false;
    }
    log_info("restart: pid {} is ready; this process stops accepting", child);
    auto& server = hub_.server();
    server.pause_accepting();
    if (!wait_until([&] { return server.accepting_paused(); }, kPauseLimit)) {
        why = "this process could not stop accepting";
        return false;
    }
    if (!hub_.freeze_for_handover(kFreezeLimit)) {
        why = "publishes under way did not finish";
        return false;
    }
    log_info("restart: stopped accepting, publishes frozen; handing the state over to pid {}", child);
    std::vector<std::pair<std::string, std::string>> states;
    try {
        states = hub_.export_handover();
    } catch (const std::exception& e) {
        why = fmt::format("export_handover failed: {}", e.what());
        restart::send_message(channel, MessageKind::Failed, why, Clock::now() + std::chrono::seconds(1), error);
        return false;
    }
    const auto send_deadline = Clock::now() + options_.ready_timeout;
    for (const auto& [module, state] : states) {
        if (!restart::send_message(channel, MessageKind::Module, restart::encode_module_state(module, state), send_deadline, error)) {
            why = fmt::format("handing over {} ({} bytes): {}", module, state.size(), error);
            return false;
        }
    }
    if (!restart::send_message(channel, MessageKind::End, {}, send_deadline, error)) {
        why = fmt::format("handing over: {}", error);
        return false;
    }
    const auto serving = restart::receive_message(channel, Clock::now() + options_.ready_timeout, error);
    if (!serving || serving->kind != MessageKind::Serving) {
        why = !serving ? fmt::format("the new process did not take over: {}", error)
                       : fmt::format("the new process did not take over: {}", serving->body);
        return false;
    }
    return true;
}

void Restarter::finish() {
    std::thread done;
    bool handed_over = false;
    {
        std::lock_guard lock(mutex_);
        done = std::move(thread_);
        handed_over = handed_over_;
        // Stopped (SIGTERM) while a restart was under way: the new process must not take
        // over a hub that is going away. Killing it ends the restart thread's waits at once.
        if (child_ > 0 && !handed_over_) ::kill(child_, SIGKILL);
    }
    if (done.joinable()) done.join();
    {
        std::lock_guard lock(mutex_);
        handed_over = handed_over || handed_over_;
    }
    if (!handed_over) restart::remove_pidfile_if_ours(options_.pidfile, static_cast<long>(::getpid()));
}

int request_restart(const std::string& pidfile, std::chrono::milliseconds timeout) {
    const auto old_pid = restart::read_pidfile(pidfile);
    if (!old_pid) {
        fmt::print(stderr, "websock-hub --restart: no pid in {}\n", pidfile);
        return 1;
    }
    sigset_t answers;
    sigemptyset(&answers);
    sigaddset(&answers, SIGUSR1);
    sigaddset(&answers, SIGUSR2);
    ::sigprocmask(SIG_BLOCK, &answers, nullptr);  // before asking: the answer may come at once
    sigval value{};
    value.sival_int = kRestartRequestValue;
    if (::sigqueue(static_cast<pid_t>(*old_pid), SIGHUP, value) != 0) {
        fmt::print(stderr, "websock-hub --restart: cannot signal pid {}: {}\n", *old_pid, std::strerror(errno));
        return 1;
    }
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now());
        if (left.count() <= 0) break;
        timespec wait{static_cast<time_t>(left.count() / 1'000'000'000), static_cast<long>(left.count() % 1'000'000'000)};
        siginfo_t info{};
        const int got = ::sigtimedwait(&answers, &info, &wait);
        if (got < 0) {
            if (errno == EINTR) continue;
            break;  // EAGAIN: the time is up
        }
        if (info.si_pid != static_cast<pid_t>(*old_pid)) continue;  // not our hub's answer
        if (got == SIGUSR2) {
            fmt::print(stderr, "websock-hub --restart: the restart failed; pid {} serves on (its log says why)\n", *old_pid);
            return 1;
        }
        const auto new_pid = restart::read_pidfile(pidfile);
        if (!new_pid || *new_pid == *old_pid || ::kill(static_cast<pid_t>(*new_pid), 0) != 0) {
            fmt::print(stderr, "websock-hub --restart: pid {} said its successor serves, but {} does not name a running one\n",
                       *old_pid, pidfile);
            return 1;
        }
        fmt::print("websock-hub: restarted: pid {} serves (pid {} drains and exits)\n", *new_pid, *old_pid);
        return 0;
    }
    fmt::print(stderr, "websock-hub --restart: no answer from pid {} within {} s\n", *old_pid,
               std::chrono::duration_cast<std::chrono::seconds>(timeout).count());
    return 1;
}

}  // namespace hub
