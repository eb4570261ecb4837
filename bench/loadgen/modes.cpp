// bench/loadgen/modes.cpp — the connect phase, then throughput, latency or idle, then the drain.
#include "bench/loadgen/loadgen.hpp"

namespace loadgen {

int LoadGen::run() {
    // ---- connect phase: at most connect_batch handshakes in flight --------------------------
    const std::uint64_t t_connect = now_ns();
    const std::uint64_t connect_deadline = t_connect + std::uint64_t(o_.connect_timeout * 1e9);
    const bool idle = o_.mode == Mode::Idle;
    const ProcSample before = sample_proc(o_.server_pid, idle);
    KernelSample k0, k1;
    if (idle) k0 = sample_kernel();
    while (now_ns() < connect_deadline) {
        while (connecting_ < o_.connect_batch && (!retry_.empty() || next_connect_ < conns_.size())) {
            if (!retry_.empty()) {
                const std::uint32_t id = retry_.back();
                retry_.pop_back();
                start_connect(conns_[id]);
            } else {
                start_connect(conns_[next_connect_++]);
            }
        }
        if (connecting_ == 0 && retry_.empty() && next_connect_ == conns_.size()) break;
        poll(connect_deadline, 100'000'000ull);
    }
    for (auto& c : conns_) {
        if (c.st == St::Connecting || c.st == St::Handshake || c.st == St::Idle) {
            errno = ETIMEDOUT;
            c.attempts = 100;
            if (c.st == St::Idle) { ++st_.connect_failures; c.st = St::Failed; }
            else fail(c, "connect (timeout)");
        }
    }
    const double connect_s = double(now_ns() - t_connect) / 1e9;
    if (open_ == 0) {
        std::fprintf(stderr, "loadgen: no connection could be opened\n");
        return 2;
    }

    ProcSample s0, s1;
    MachineSample m0, m1;
    double c0 = 0, c1 = 0;
    const std::uint64_t t0 = t0_ = now_ns();
    std::vector<std::uint32_t> open_ids;
    for (auto& c : conns_)
        if (c.st == St::Open) {
            c.slot = std::uint32_t(open_ids.size());
            open_ids.push_back(c.id);
        }
    slots_ = open_ids.size();
    const std::uint64_t warm_ns = std::uint64_t(o_.warmup * 1e9);
    const std::uint64_t dur_ns = std::uint64_t(o_.duration * 1e9);
    std::uint64_t unanswered = 0;
    bool drained = true;

    if (o_.mode == Mode::Throughput) {
        win_start_ = t0 + warm_ns;
        win_end_ = win_start_ + dur_ns;
        sending_ = true;
        for (auto& c : conns_) {
            if (c.st != St::Open) continue;
            for (int k = 0; k < o_.inflight; ++k) send_data(c, rel(t0));
            flush(c);
        }
        bool sampled = false;
        std::uint64_t now;
        while ((now = now_ns()) < win_end_ && open_ > 0) {
            if (!sampled && now >= win_start_) {
                s0 = sample_proc(o_.server_pid);
                c0 = cpu_self_s();
                m0 = sample_machine();
                st_.window_echoes = 0;
                counting_ = true;
                t_s0_ = now_ns();
                sampled = true;
            }
            poll(sampled ? win_end_ : win_start_, 1'000'000ull);
        }
        s1 = sample_proc(o_.server_pid);
        c1 = cpu_self_s();
        m1 = sample_machine();
        counting_ = false;
        t_s1_ = now_ns();
        sending_ = false;
    } else if (o_.mode == Mode::Latency) {
        if (prctl(PR_SET_TIMERSLACK, 1UL) != 0) std::fprintf(stderr, "loadgen: PR_SET_TIMERSLACK failed\n");
        win_start_ = t0 + warm_ns;
        win_end_ = win_start_ + dur_ns;
        const std::uint64_t total = std::uint64_t(o_.rate * double(warm_ns + dur_ns) / 1e9);
        st_.lat_ns.reserve(std::size_t(o_.rate * o_.duration * 1.05) + 16);
        std::vector<std::uint8_t> is_dirty(conns_.size(), 0);
        std::uint64_t j = 0;
        bool sampled = false;
        // `total` is every message scheduled before win_end_; all of them are sent, late ones
        // late (and measured from their schedule), even if the loop wakes after win_end_.
        for (;;) {
            const std::uint64_t now = now_ns();
            if (!sampled && now >= win_start_) {
                s0 = sample_proc(o_.server_pid);
                c0 = cpu_self_s();
                m0 = sample_machine();
                st_.window_echoes = 0;
                counting_ = true;
                t_s0_ = now_ns();
                sampled = true;
            }
            // Send everything that is due, each stamped with its scheduled time.
            while (j < total && due(j) <= now) {
                Conn& c = conns_[open_ids[j % open_ids.size()]];
                const std::uint64_t d = due(j);
                if (now - d > st_.max_send_lag_ns) st_.max_send_lag_ns = now - d;
                if (c.st == St::Open) {
                    send_data(c, rel(d));
                    c.sent_at.push_back(now);
                    if (!is_dirty[c.id]) { is_dirty[c.id] = 1; dirty_.push_back(c.id); }
                } else if (d >= win_start_) {
                    ++unanswered;  // its connection is gone: it can never be answered
                }
                ++j;
            }
            for (auto id : dirty_) {
                is_dirty[id] = 0;
                if (conns_[id].fd >= 0) flush(conns_[id]);
            }
            dirty_.clear();
            if (now >= win_end_ || open_ == 0) break;
            std::uint64_t next = j < total ? due(j) : win_end_;
            if (!sampled && win_start_ < next) next = win_start_;
            poll(std::min(next, win_end_), 10'000'000ull);
        }
        s1 = sample_proc(o_.server_pid);
        c1 = cpu_self_s();
        m1 = sample_machine();
        counting_ = false;
        t_s1_ = now_ns();
    } else {  // idle
        win_start_ = t0;
        win_end_ = UINT64_MAX;
        if (o_.idle_echo) {
            for (auto& c : conns_) {
                if (c.st != St::Open) continue;
                send_data(c, rel(t0));
                flush(c);
            }
        }
        const std::uint64_t hold_end = t0 + warm_ns + dur_ns;
        while (now_ns() < hold_end && open_ > 0) poll(hold_end, 100'000'000ull);
        s1 = sample_proc(o_.server_pid, true);
        k1 = sample_kernel();
        s0 = s1;
    }

    // ---- drain: wait (bounded) for the echoes still in flight --------------------------------
    const std::uint64_t drain_deadline = now_ns() + std::uint64_t(o_.drain * 1e9);
    while (pending_echoes() && now_ns() < drain_deadline) poll(drain_deadline, 10'000'000ull);
    const std::uint64_t drain_end = now_ns();
    for (const auto& c : conns_) {
        if (c.recvd >= c.sent) continue;
        unanswered += c.sent - c.recvd;
        drained = false;
        // Latency mode: a message of the window that never came back counts as at least as
        // late as the end of the drain, so a server that stops answering cannot improve its
        // percentiles by doing so.
        if (o_.mode == Mode::Latency)
            for (std::uint64_t seq = c.recvd; seq < c.sent; ++seq) {
                const std::uint64_t d = due_of(c, seq);
                const std::size_t k = std::size_t(seq - c.recvd);
                if (d >= win_start_ && d < win_end_) {
                    st_.lat_ns.push_back(drain_end - d);
                    st_.svc_ns.push_back(drain_end - (k < c.sent_at.size() ? c.sent_at[k] : d));
                }
            }
    }
    st_.lat_unanswered = unanswered;
    const ProcSample after_drain = sample_proc(o_.server_pid);
    close_all();
    return report(Measured{before, s0, s1, after_drain, m0, m1, c0, c1, connect_s, unanswered, drained, k0, k1});
}

}  // namespace loadgen
