// bench/loadgen/proc.cpp — samples of the server process and of the whole machine, from /proc.
#include "bench/loadgen/loadgen.hpp"

#include <dirent.h>

namespace loadgen {

ProcSample sample_proc(int pid, bool count_fds) {
    ProcSample s;
    if (pid <= 0) return s;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (FILE* f = std::fopen(path, "r")) {
        char buf[4096];
        const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
        std::fclose(f);
        buf[n] = '\0';
        // Fields after the last ')': state(3) ppid(4) ... utime(14) stime(15).
        if (const char* p = std::strrchr(buf, ')')) {
            p += 2;
            unsigned long long ut = 0, st = 0;
            int field = 3;
            while (*p && field < 16) {
                if (field == 14) ut = std::strtoull(p, nullptr, 10);
                if (field == 15) st = std::strtoull(p, nullptr, 10);
                while (*p && *p != ' ') ++p;
                while (*p == ' ') ++p;
                ++field;
            }
            s.cpu_s = double(ut + st) / double(sysconf(_SC_CLK_TCK));
            s.ok = true;
        }
    }
    std::snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (FILE* f = std::fopen(path, "r")) {
        char line[256];
        while (std::fgets(line, sizeof line, f)) {
            if (std::strncmp(line, "VmRSS:", 6) == 0) s.rss_kb = std::strtol(line + 6, nullptr, 10);
            if (std::strncmp(line, "Threads:", 8) == 0) s.threads = std::strtol(line + 8, nullptr, 10);
        }
        std::fclose(f);
    }
    if (count_fds) {
        std::snprintf(path, sizeof path, "/proc/%d/fd", pid);
        if (DIR* d = opendir(path)) {
            long n = 0;
            while (const dirent* e = readdir(d))
                if (e->d_name[0] != '.') ++n;
            closedir(d);
            s.fds = n;
        }
    }
    return s;
}


// The whole machine's CPU time (all CPUs), from the first line of /proc/stat: busy (not idle,
// not iowait) and steal, in seconds. Lets the report say how much of the machine *other*
// processes used during the window: this is a shared machine, and a run next to a compiler
// is not a clean run.
MachineSample sample_machine() {
    MachineSample m;
    FILE* f = std::fopen("/proc/stat", "r");
    if (!f) return m;
    unsigned long long v[10] = {};
    const int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                              &v[6], &v[7], &v[8], &v[9]);
    std::fclose(f);
    if (n < 8) return m;
    const double tick = double(sysconf(_SC_CLK_TCK));
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    m.busy_s = double(v[0] + v[1] + v[2] + v[5] + v[6]) / tick;
    m.steal_s = double(v[7]) / tick;
    m.ok = true;
    return m;
}

KernelSample sample_kernel() {
    KernelSample k;
    FILE* f = std::fopen("/proc/meminfo", "r");
    if (!f) return k;
    char line[256];
    while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, "Slab:", 5) == 0) k.slab_kb = std::strtol(line + 5, nullptr, 10);
        if (std::strncmp(line, "KernelStack:", 12) == 0) k.kernel_stack_kb = std::strtol(line + 12, nullptr, 10);
    }
    std::fclose(f);
    k.ok = k.slab_kb >= 0 && k.kernel_stack_kb >= 0;
    return k;
}

}  // namespace loadgen
