// Fault injection at every I/O call (issue 10): each scenario runs once to count the I/O
// calls of its connections, then once more for every call N and every failure that call
// can return, on both engines (the event loop with one loop and with two). Every run must
// end with no crash and no leak (ASan/UBSan and LeakSanitizer in the asan build),
// on_connection_close exactly once for each opened
// connection, the server still serving a new client, serve_forever() returning on stop(),
// and as many open descriptors as before.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>
#include <unistd.h>

#include "test/faults/scenarios.hpp"
#include "websock/detail/server_core.hpp"

namespace faults {
namespace {

/// An engine and its shape: each scenario runs on every one of these.
struct EngineSetup {
    websock::Engine engine;
    std::size_t event_loops;
    std::string name;
};

const std::vector<EngineSetup>& engines() {
    static const std::vector<EngineSetup> all = {
        {websock::Engine::ThreadPerClient, 1, "thread per client"},
        {websock::Engine::EventLoop, 1, "event loop"},
        // loop 0 accepts, so a scenario's connections run on loop 1 and loop 0 in turn
        {websock::Engine::EventLoop, 2, "event loops (2)"},
    };
    return all;
}

struct RunResult {
    bool completed = false;
    std::string problems;
    std::string injected;
};

/// One run of `scenario` under `plan`; checks everything a run must leave behind.
RunResult run_once(const Scenario& scenario, const EngineSetup& engine, const TlsFiles& tls,
                   const std::shared_ptr<FaultPlan>& plan) {
    RunResult result;
    const std::size_t descriptors_before = open_descriptors();
    {
        ServerUnderTest server({engine.engine, engine.event_loops, scenario.tls ? &tls : nullptr, scenario.async_http}, plan);
        result.completed = scenario.run(server);
        // The single fault may land in this check when the scenario made fewer calls than
        // in the counting run: a second new client then must get through.
        if (!scenario.stops_server && !serves_a_new_client(server) && !serves_a_new_client(server))
            result.problems += "a new client was not served afterwards; ";
        if (!server.stop_and_join()) {
            std::fprintf(stderr, "fault suite: %s on the %s engine, %s: serve_forever() did not return after stop()\n",
                         scenario.name.c_str(), engine.name.c_str(), plan->injected_description().c_str());
            std::abort();  // a hung server cannot be joined; better a loud end than a hung CI
        }
        if (!server.wait_all_closed()) result.problems += "on_connection_close missing after serve_forever returned; ";
        result.problems += server.bookkeeping_errors();
        if (server.server().client_count() != 0)
            result.problems += "client_count() is " + std::to_string(server.server().client_count()) + "; ";
    }
    const std::size_t descriptors_after = open_descriptors();
    if (descriptors_after != descriptors_before)
        result.problems += "descriptors: " + std::to_string(descriptors_before) + " before, " +
                           std::to_string(descriptors_after) + " after; ";
    result.injected = plan->injected() ? plan->injected_description() : "nothing injected";
    return result;
}

struct TlsFixture {
    TlsFiles files;
    std::filesystem::path directory;
    TlsFixture() {
        char pattern[] = "/tmp/websock-faults-XXXXXX";
        directory = ::mkdtemp(pattern);
        files.certificate = (directory / "cert.pem").string();
        files.key = (directory / "key.pem").string();
        REQUIRE(make_self_signed(files.certificate, files.key));
    }
    ~TlsFixture() { std::filesystem::remove_all(directory); }
};

void fail_every_call(const Scenario& scenario, const EngineSetup& engine, const TlsFiles& tls) {
    CAPTURE(scenario.name);
    const std::string engine_label = engine.name;
    CAPTURE(engine_label);
    // The counting run: no fault, so the scenario must go through completely.
    auto counting = std::make_shared<FaultPlan>();
    const auto clean = run_once(scenario, engine, tls, counting);
    REQUIRE_MESSAGE(clean.completed, "the scenario fails without any fault");
    REQUIRE_MESSAGE(clean.problems.empty(), clean.problems);
    const auto log = counting->log();
    REQUIRE(!log.empty());
    std::size_t runs = 0;
    for (std::size_t call = 1; call <= log.size(); ++call) {
        const std::size_t variants = failures_for(log[call - 1], scenario.tls).size();
        for (std::size_t variant = 0; variant < variants; ++variant) {
            auto plan = std::make_shared<FaultPlan>(static_cast<int>(call), variant);
            const auto result = run_once(scenario, engine, tls, plan);
            ++runs;
            INFO("injected: " << result.injected);
            CHECK_MESSAGE(result.problems.empty(), result.problems);
            // A direct send that fails (thread engine) leaves its bytes to the client's
            // thread, so the scenario still goes through: nothing lost, nothing reordered.
            // (The kind of call that failed is this run's own: timing may order calls
            // differently from the counting run's.)
            const auto run_log = plan->log();
            if (plan->injected() && call <= run_log.size() && run_log[call - 1] == CallKind::DirectWrite)
                CHECK_MESSAGE(result.completed, "a failed direct write lost or reordered a message");
        }
    }
    MESSAGE(scenario.name << " (" << engine.name << "): " << log.size() << " I/O calls, " << runs
                          << " runs with a fault");
}

}  // namespace

TEST_CASE("faults: every scenario survives a failure at each of its I/O calls, in each way, on both engines") {
    TlsFixture tls;
    // Warm up lazily opened descriptors (OpenSSL, the loader) before any run counts them.
    (void)run_once(all_scenarios()[3], engines()[0], tls.files, std::make_shared<FaultPlan>());
    for (const auto& engine : engines())
        for (const auto& scenario : all_scenarios()) fail_every_call(scenario, engine, tls.files);
}

}  // namespace faults
